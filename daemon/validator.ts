import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { SourceIssue } from './errors';
import type { InstancePath, YamlSource } from './yamlSource';

/**
 * The one Ajv instance: every schema (profile, config, each rule's and transport's options)
 * is compiled here once. Defaults from the schemas are applied while validating.
 */
export const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  strict: true,
  allowUnionTypes: true,
  // Errors carry their schema, so messages can use its hints and list the allowed keys.
  verbose: true,
  // Annotations: `patternHint` says in words what a `pattern` wants; `secret` marks fields
  // that are never logged.
  keywords: ['patternHint', 'secret'],
});

const compiled = new WeakMap<object, ValidateFunction>();

export function compileSchema(schema: object): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    // The profile schema is composed afresh for each registry (site rules, reloads) under the
    // same `$id`; Ajv refuses a second schema with a known id, so the newest one takes it over.
    const id = (schema as { $id?: unknown }).$id;
    if (typeof id === 'string') ajv.removeSchema(id);
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

function pathOf(error: ErrorObject): (string | number)[] {
  if (error.instancePath === '') return [];
  return error.instancePath.slice(1).split('/').map((part) => {
    const text = part.replace(/~1/g, '/').replace(/~0/g, '~');
    return /^\d+$/.test(text) ? Number(text) : text;
  });
}

/** A message a person can act on, for one Ajv error. */
function messageOf(error: ErrorObject, path: InstancePath): string {
  const name = path.length > 0 ? `"${path[path.length - 1]}"` : 'the document';
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties': {
      const allowed = Object.keys((error.parentSchema?.properties as object | undefined) ?? {});
      return `unknown key "${String(params.additionalProperty)}"${allowed.length ? `; allowed keys here: ${allowed.join(', ')}` : '; no keys are allowed here'}`;
    }
    case 'required':
      return `missing required key "${String(params.missingProperty)}"`;
    case 'enum':
      // The plugin lists are long and the value is usually a typo: say what was written.
      if (/^rules\/\d+\/rule$/.test(path.join('/')) || path.join('/') === 'delivery/transport') {
        const what = path[0] === 'rules' ? 'rule' : 'transport';
        return `unknown ${what} ${JSON.stringify(error.data)}; known ${what}s: ${(params.allowedValues as unknown[]).map(String).join(', ')}`;
      }
      return `${name} must be one of: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${name} must be ${JSON.stringify(params.allowedValue)}`;
    case 'type':
      return `${name} must be of type ${String(params.type).replace(',', ' or ')}`;
    case 'pattern': {
      const hint = (error.parentSchema as { patternHint?: string } | undefined)?.patternHint;
      return `${name} ${hint ?? `must match the pattern ${String(params.pattern)}`}`;
    }
    case 'minProperties':
      return `${name} must not be empty`;
    default:
      return `${name} ${error.message ?? 'is invalid'}`;
  }
}

/** Errors about what a mapping lacks as a whole rather than about one value in it. */
const OBJECT_KEYWORDS = new Set(['required', 'minProperties', 'dependencies', 'dependentRequired']);

/**
 * Validates `source.data` with `validate` (applying defaults) and returns one issue per
 * error, with line and column. The noise that composition adds (`if`, `then`, `anyOf` wrappers
 * whose real cause is reported separately) is left out.
 */
export function validateSource(validate: ValidateFunction, source: YamlSource, data: unknown = source.data): SourceIssue[] {
  if (validate(data)) return [];
  const issues: SourceIssue[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    if (error.keyword === 'if' || error.keyword === 'anyOf' || error.keyword === 'oneOf' || error.keyword === 'allOf') continue;
    const path = pathOf(error);
    const message = messageOf(error, path);
    // A wrong value is pointed at itself, a mapping that lacks something at its key, an
    // unknown key at that key.
    const issue = source.issueAt(path, message, { key: OBJECT_KEYWORDS.has(error.keyword) });
    if (error.keyword === 'additionalProperties') {
      const keyPath = [...path, String((error.params as { additionalProperty: string }).additionalProperty)];
      Object.assign(issue, source.issueAt(keyPath, message, { key: true }), { path: issue.path });
    }
    const dedupe = `${issue.line}:${issue.column}:${issue.message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    issues.push(issue);
  }
  return issues;
}
