import fs from 'node:fs';
import path from 'node:path';
import { durationSchema } from './duration';
import { SbeError } from './errors';
import type { LogFormat, LogLevel } from './logger';
import { DEFAULT_CONFIG_FILE, defaultDatabaseUrl, defaultStateDir } from './paths';
import { compileSchema, validateSource } from './validator';
import { readYamlFile } from './yamlSource';

export interface Config {
  /** The file it was read from, or undefined when none exists and defaults apply. */
  file?: string;
  profilesDir: string;
  stateDir: string;
  /** The default source for profiles that name none. */
  database: string;
  /** The directory `database` and other relative values are resolved against. */
  baseDir: string;
  rulesDir?: string;
  /** Run ledger URL; undefined means ledger.db in the state directory. */
  ledger?: string;
  outboxRetention: string;
  /** How long a shutdown waits for running exports before it interrupts them (a duration). */
  shutdownGrace: string;
  log: { level: LogLevel; format?: LogFormat };
}

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    profilesDir: { type: 'string', minLength: 1, description: 'Directory of profile files. Default: profiles.d/ beside the config file.' },
    stateDir: { type: 'string', minLength: 1, description: 'Ledger and outbox directory (SPEC 8 gives the default).' },
    database: { type: 'string', minLength: 1, description: 'Default source database URL. Default: the SQLite file library.db in the state directory.' },
    rulesDir: { type: 'string', minLength: 1, description: 'Directory of site rule modules (.js).' },
    ledger: { type: 'string', minLength: 1, description: 'Run ledger database URL. Default: the SQLite file ledger.db in the state directory.' },
    outboxRetention: durationSchema('30d', 'How long delivered and superseded exports stay in the outbox.'),
    shutdownGrace: durationSchema(
      '30s',
      'How long the daemon waits on SIGTERM for running exports to finish; then it interrupts them (recorded interrupted, rebuilt at the next start). Keep it below the unit\'s TimeoutStopSec.',
    ),
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['error', 'warn', 'info', 'debug'], default: 'info' },
        format: { enum: ['text', 'json', 'journal'], description: 'Default: journal under systemd, text otherwise.' },
      },
    },
  },
} as const;

interface RawConfig {
  profilesDir?: string;
  stateDir?: string;
  database?: string;
  rulesDir?: string;
  ledger?: string;
  outboxRetention: string;
  shutdownGrace: string;
  log: { level: LogLevel; format?: LogFormat };
}

/**
 * Loads the config file. `--config FILE` must exist; the default file may be absent, and then
 * every value takes its default (`profilesDir` still beside where that file would be).
 */
export async function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const explicit = file !== undefined;
  const configFile = path.resolve(file ?? env.SIS_BLOCK_EXPORT_CONFIG ?? DEFAULT_CONFIG_FILE);
  let raw: RawConfig = { outboxRetention: '30d', shutdownGrace: '30s', log: { level: 'info' } };
  let found = false;
  if (explicit || fs.existsSync(configFile)) {
    const source = await readYamlFile(configFile, 'CONFIG_INVALID');
    const data = source.data ?? {};
    const issues = validateSource(compileSchema(configSchema), source, data);
    if (issues.length > 0) throw new SbeError('CONFIG_INVALID', `${configFile} is not a valid configuration`, { issues });
    raw = data as RawConfig;
    found = true;
  }
  const baseDir = path.dirname(configFile);
  const stateDir = raw.stateDir ? path.resolve(baseDir, raw.stateDir) : defaultStateDir(env);
  return {
    ...(found ? { file: configFile } : {}),
    baseDir,
    profilesDir: path.resolve(baseDir, raw.profilesDir ?? 'profiles.d'),
    stateDir,
    database: raw.database ?? defaultDatabaseUrl(stateDir),
    ...(raw.rulesDir ? { rulesDir: path.resolve(baseDir, raw.rulesDir) } : {}),
    ...(raw.ledger ? { ledger: raw.ledger } : {}),
    outboxRetention: raw.outboxRetention,
    shutdownGrace: raw.shutdownGrace,
    log: raw.log,
  };
}
