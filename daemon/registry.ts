import fs from 'node:fs/promises';
import path from 'node:path';
import { builtinRules } from '../rules';
import { transports as builtinTransports } from '../transports';
import { SbeError } from './errors';
import { STAGES, type AnyRule } from './ruleApi';
import type { AnyTransport } from './transportApi';
import { ajv } from './validator';

/** Every plugin a profile may name: built-in and site rules, and the transports. */
export interface Registry {
  readonly rules: ReadonlyMap<string, AnyRule>;
  readonly transports: ReadonlyMap<string, AnyTransport>;
}

export const builtinRegistry: Registry = { rules: builtinRules, transports: builtinTransports };

const RULE_ID = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Checks that a module is a usable rule; site rules get the same checks as built-in ones. */
export function checkRuleDefinition(candidate: unknown, origin: string): AnyRule {
  const fail = (message: string): never => {
    throw new SbeError('RULE_INVALID', `${origin}: ${message}`);
  };
  if (typeof candidate !== 'object' || candidate === null) return fail('does not export a rule object (use module.exports = { id, description, stage, schema, apply })');
  const rule = candidate as Partial<AnyRule>;
  if (typeof rule.id !== 'string' || !RULE_ID.test(rule.id)) return fail('`id` must be kebab-case ([a-z0-9-])');
  const expected = path.basename(origin).replace(/\.(c?js|ts)$/, '');
  if (rule.id !== expected) return fail(`rule id "${rule.id}" must equal the file name "${expected}"`);
  if (typeof rule.description !== 'string' || rule.description.length === 0) return fail('`description` must be a non-empty string');
  if (!STAGES.includes(rule.stage as never)) return fail(`\`stage\` must be one of ${STAGES.join(', ')}`);
  if (typeof rule.apply !== 'function') return fail('`apply(qb, options, ctx)` must be a function');
  if (rule.check !== undefined && typeof rule.check !== 'function') return fail('`check` must be a function when present');
  const schema = rule.schema as Record<string, unknown> | undefined;
  if (typeof schema !== 'object' || schema === null || schema.type !== 'object' || schema.additionalProperties !== false) {
    return fail('`schema` must be an object schema with additionalProperties: false');
  }
  // The schema is embedded in the composed profile schema, where an `$id` would be registered
  // twice and a `$ref` would resolve against the profile schema's root.
  if (/"\$(id|ref)"\s*:/.test(JSON.stringify(schema))) return fail('`schema` must be self-contained: no $id or $ref (it is embedded in the profile schema)');
  try {
    ajv.compile(schema);
  } catch (error) {
    return fail(`\`schema\` does not compile: ${(error as Error).message}`);
  }
  return { examples: [], ...rule } as AnyRule;
}

/** The built-in registry plus the site rules in `rulesDir` (`*.js`, `*.cjs`), which may not shadow built-ins. */
export async function loadRegistry(rulesDir: string | undefined): Promise<Registry> {
  if (!rulesDir) return builtinRegistry;
  let names: string[];
  try {
    names = (await fs.readdir(rulesDir)).filter((name) => /\.c?js$/.test(name)).sort();
  } catch (error) {
    throw new SbeError('CONFIG_INVALID', `cannot read the rules directory ${rulesDir}: ${(error as Error).message}`, { cause: error });
  }
  const rules = new Map(builtinRules);
  const siteFiles = new Map<string, string>();
  for (const name of names) {
    // Absolute, or require() would look a relative directory up as a package name.
    const file = path.resolve(rulesDir, name);
    let exported: unknown;
    try {
      exported = require(file);
    } catch (error) {
      throw new SbeError('RULE_INVALID', `${file}: cannot be loaded: ${(error as Error).message}`, { cause: error });
    }
    const candidate = (exported as { default?: unknown } | null)?.default ?? exported;
    const rule = checkRuleDefinition(candidate, file);
    if (rules.has(rule.id)) {
      const owner = siteFiles.has(rule.id) ? `the site rule ${siteFiles.get(rule.id)}` : 'a built-in rule';
      throw new SbeError('RULE_INVALID', `${file}: rule id "${rule.id}" is already taken by ${owner}`);
    }
    rules.set(rule.id, rule);
    siteFiles.set(rule.id, file);
  }
  return { rules: new Map([...rules].sort(([a], [b]) => (a < b ? -1 : 1))), transports: builtinTransports };
}
