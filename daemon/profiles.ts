import fs from 'node:fs/promises';
import path from 'node:path';
import { Cron } from 'croner';
import { parseDatabaseUrl } from './database';
import { SbeError, type SourceIssue } from './errors';
import { isKnownCurrency } from './money';
import { composeProfileSchema, FILE_NAME_PLACEHOLDERS } from './profileSchema';
import type { Registry } from './registry';
import { SIGNING_PATH_FIELDS, type SigningOptions } from './signing/options';
import type { AnyRule } from './ruleApi';
import type { AnyTransport } from './transportApi';
import { compileSchema, validateSource } from './validator';
import { parseYaml, type YamlSource } from './yamlSource';

export interface ResolvedRule {
  rule: AnyRule;
  /** Validated options with defaults applied. */
  options: Record<string, unknown>;
  /** Position in the profile's `rules` list, or -1 for a rule applied by default. */
  index: number;
}

export interface Profile {
  id: string;
  description?: string;
  schedule?: string;
  timezone: string;
  database?: string;
  source: string;
  currency: string;
  rules: ResolvedRule[];
  /** `signing` paths are absolute. */
  output: { fileName: string; signing?: SigningOptions };
  delivery: { transport: AnyTransport; options: Record<string, unknown> };
  /** Absolute path of the profile file; relative paths in it are resolved against its directory. */
  file: string;
}

interface RawProfile {
  id: string;
  description?: string;
  schedule?: string;
  timezone: string;
  database?: string;
  source: string;
  currency: string;
  rules: { rule: string; with: Record<string, unknown> }[];
  output: { fileName: string; signing?: SigningOptions };
  delivery: { transport: string } & Record<string, unknown>;
}

const schemaByRegistry = new WeakMap<Registry, object>();

export function profileSchemaFor(registry: Registry): object {
  let schema = schemaByRegistry.get(registry);
  if (!schema) {
    schema = composeProfileSchema(registry);
    schemaByRegistry.set(registry, schema);
  }
  return schema;
}

/** Checks the schema cannot express; each issue points at the offending value. */
function semanticIssues(raw: RawProfile, source: YamlSource, registry: Registry): SourceIssue[] {
  const issues: SourceIssue[] = [];
  if (raw.database !== undefined) {
    try {
      parseDatabaseUrl(raw.database, path.dirname(source.file), { readSecrets: false });
    } catch (error) {
      issues.push(source.issueAt(['database'], (error as Error).message));
    }
  }
  if (!isKnownCurrency(raw.currency)) {
    issues.push(source.issueAt(['currency'], `"${raw.currency}" is not an ISO 4217 currency code known to this system`));
  }
  let zoneOk = true;
  try {
    new Intl.DateTimeFormat('en', { timeZone: raw.timezone });
  } catch {
    zoneOk = false;
    issues.push(source.issueAt(['timezone'], `"${raw.timezone}" is not an IANA time zone (like "America/New_York" or "UTC")`));
  }
  if (raw.schedule !== undefined && zoneOk) {
    const fields = raw.schedule.trim().split(/\s+/).length;
    if (fields !== 5 && fields !== 6) {
      issues.push(source.issueAt(['schedule'], `"${raw.schedule}" has ${fields} fields; a schedule has 5 (minute hour day month weekday) or 6 (seconds first)`));
    } else {
      try {
        new Cron(raw.schedule, { paused: true, timezone: raw.timezone });
      } catch (error) {
        issues.push(source.issueAt(['schedule'], `"${raw.schedule}" is not a valid cron expression: ${(error as Error).message}`));
      }
    }
  }
  for (const match of raw.output.fileName.matchAll(/\{([^}]*)\}/g)) {
    if (!FILE_NAME_PLACEHOLDERS.includes(match[1] as never)) {
      issues.push(source.issueAt(['output', 'fileName'], `unknown placeholder {${match[1]}}; use ${FILE_NAME_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`));
    }
  }
  if (/[{}]/.test(raw.output.fileName.replace(/\{[^{}]*\}/g, ''))) {
    issues.push(source.issueAt(['output', 'fileName'], 'unbalanced "{" or "}"'));
  }
  const identity = raw.rules.map((entry, index) => ({ entry, index })).filter(({ entry }) => registry.rules.get(entry.rule)?.stage === 'identity');
  for (const { index } of identity.slice(1)) {
    issues.push(source.issueAt(['rules', index, 'rule'], `only one identity rule may be listed; "${identity[0]!.entry.rule}" is already at rules[${identity[0]!.index}]`));
  }
  raw.rules.forEach((entry, index) => {
    const message = registry.rules.get(entry.rule)?.check?.(entry.with, { currency: raw.currency });
    if (message) issues.push(source.issueAt(['rules', index, 'with'], message));
  });
  return issues;
}

/** Rules applied when the profile lists none of their stage (SPEC 3 defaults). */
function withDefaultRules(listed: ResolvedRule[], registry: Registry): ResolvedRule[] {
  const rules = [...listed];
  const defaults: [stage: string, ruleId: string][] = [['identity', 'match-id'], ['qualification', 'threshold']];
  for (const [stage, ruleId] of defaults) {
    if (rules.some(({ rule }) => rule.stage === stage)) continue;
    const rule = registry.rules.get(ruleId)!;
    const options = {};
    compileSchema(rule.schema)(options); // applies the schema's defaults
    rules.push({ rule, options, index: -1 });
  }
  return rules;
}

/** Parses and validates profile text. Throws PROFILE_INVALID with every issue found. */
export function parseProfile(file: string, text: string, registry: Registry): Profile {
  const source = parseYaml(file, text, 'PROFILE_INVALID');
  if (typeof source.data !== 'object' || source.data === null || Array.isArray(source.data)) {
    throw new SbeError('PROFILE_INVALID', `${file} is not a valid profile`, { issues: [source.issueAt([], 'a profile is a YAML mapping with at least id, currency and delivery')] });
  }
  const validate = compileSchema(profileSchemaFor(registry));
  let issues = validateSource(validate, source);
  if (issues.length === 0) issues = semanticIssues(source.data as RawProfile, source, registry);
  if (issues.length > 0) throw new SbeError('PROFILE_INVALID', `${file} is not a valid profile`, { issues });

  const raw = source.data as RawProfile;
  const baseDir = path.dirname(file);
  const transport = registry.transports.get(raw.delivery.transport)!;
  const deliveryOptions: Record<string, unknown> = { ...raw.delivery };
  for (const field of transport.pathFields) {
    const value = deliveryOptions[field];
    if (typeof value === 'string') deliveryOptions[field] = path.resolve(baseDir, value);
  }
  const listed = raw.rules.map((entry, index): ResolvedRule => ({ rule: registry.rules.get(entry.rule)!, options: entry.with, index }));
  return {
    id: raw.id,
    ...(raw.description === undefined ? {} : { description: raw.description }),
    ...(raw.schedule === undefined ? {} : { schedule: raw.schedule }),
    timezone: raw.timezone,
    ...(raw.database === undefined ? {} : { database: raw.database }),
    source: raw.source,
    currency: raw.currency,
    rules: withDefaultRules(listed, registry),
    output: withResolvedSigningPaths(raw.output, baseDir),
    delivery: { transport, options: deliveryOptions },
    file,
  };
}

/** Key and passphrase paths in `output.signing` are relative to the profile file. */
function withResolvedSigningPaths(output: RawProfile['output'], baseDir: string): Profile['output'] {
  if (!output.signing) return output;
  const signing: SigningOptions = { ...output.signing };
  for (const field of SIGNING_PATH_FIELDS) {
    const value = signing[field];
    if (value !== undefined) signing[field] = path.resolve(baseDir, value);
  }
  return { ...output, signing };
}

export async function loadProfileFile(file: string, registry: Registry): Promise<Profile> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await fs.readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SbeError(code === 'ENOENT' ? 'PROFILE_NOT_FOUND' : 'PROFILE_INVALID', `cannot read profile ${absolute}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
  }
  return parseProfile(absolute, text, registry);
}

/** Profile files in a directory: `*.yaml`/`*.yml`, not hidden, no editor backups. */
export async function listProfileFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new SbeError('CONFIG_INVALID', `cannot read the profiles directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  return names.filter(isProfileFileName).sort().map((name) => path.join(dir, name));
}

export function isProfileFileName(name: string): boolean {
  return /\.ya?ml$/.test(name) && !name.startsWith('.') && !name.startsWith('#');
}

/**
 * Finds a profile by `--profile FILE|ID`: an existing file path, else the profile whose `id`
 * is ID in the profiles directory.
 */
export async function resolveProfile(reference: string, profilesDir: string, registry: Registry): Promise<Profile> {
  const looksLikePath = reference.includes('/') || /\.ya?ml$/.test(reference);
  if (looksLikePath) return loadProfileFile(reference, registry);
  const files = await listProfileFiles(profilesDir);
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    // Cheap pre-filter before a full parse: the id line must be there.
    if (!new RegExp(`^id:\\s*["']?${reference.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}["']?\\s*(#.*)?$`, 'm').test(text)) continue;
    return parseProfile(file, text, registry);
  }
  throw new SbeError('PROFILE_NOT_FOUND', `no profile with id "${reference}" in ${profilesDir} (${files.length} profile file(s) there); give a file path or a known id`);
}
