import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { registerDaemonCommands } from './cliDaemon';
import { registerSigningCommands } from './cliSigning';
import { loadConfig, type Config } from './config';
import { openDatabase, parseDatabaseUrl } from './database';
import { ExitCode, SbeError, exitCodeOf } from './errors';
import { runExport, sourceTarget, type ExportSummary } from './exporter';
import { Ledger, type RunRecord } from './ledger';
import { createLogger, type Logger, type LogLevel } from './logger';
import { migrateLatest } from './migrations';
import { loadProfileFile, resolveProfile } from './profiles';
import { loadRegistry } from './registry';
import { seedDemo, seedReferenceData } from './seed';
import { packageRoot } from './paths';
import { parseNowOption } from './timestamps';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** The wall clock; `--now` overrides it for an export. */
  clock: () => Date;
}

const EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  unexpected error
  2  invalid input (usage, config, profile)
  3  source database error
  4  delivery failed (export kept in the outbox)
  5  delivery refused (host key, authentication, permission)`;

function positiveInteger(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new SbeError('USAGE', `${name} must be a positive whole number, not "${value}"`);
    return Number(value);
  };
}

function printSummary(out: NodeJS.WritableStream, summary: ExportSummary, currency: string, dryRun: boolean): void {
  const lines = [
    `${dryRun ? 'dry run' : 'run'} ${summary.runId}: ${summary.users} user(s), ${summary.blocks} block(s), active balance total ${summary.activeBalanceTotal} ${currency}`,
    `skipped (no ${summary.matchIdType} identifier): ${summary.skippedMissingMatchId}`,
  ];
  if (summary.droppedCharacters > 0) lines.push(`characters XML cannot carry, dropped: ${summary.droppedCharacters}`);
  if (summary.file) lines.push(`written: ${summary.file.path} (${summary.file.bytes} bytes, sha256 ${summary.file.sha256})`);
  if (summary.destination) lines.push(`delivered: ${summary.file!.name} to ${summary.destination}`);
  out.write(`${lines.join('\n')}\n`);
}

/** Runs the command line; returns the exit code instead of exiting (tests call this directly). */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let logger: Logger = createLogger({ stream: io.stderr, level: 'warn' });
  const withConfig = async (file: string | undefined, verbose?: boolean): Promise<Config> => {
    const config = await loadConfig(file, io.env);
    const level: LogLevel = verbose ? 'debug' : config.log.level;
    logger = createLogger({ stream: io.stderr, level, ...(config.log.format ? { format: config.log.format } : {}) });
    return config;
  };
  let exitCode: number = ExitCode.ok;

  const program = new Command('sis-block-export')
    .description('Exports library users with blocks or fines to a Student Information System (signed XML, delivered atomically).')
    .version((JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .addHelpText('after', EXIT_CODES_HELP);

  program
    .command('export')
    .description('Run one export of a profile now: select, write the XML into the outbox, deliver it.')
    .requiredOption('--profile <file|id>', 'profile file, or the id of a profile in the profiles directory')
    .option('--config <file>', 'config file (default /etc/sis-block-export/config.yaml, if present)')
    .option('--now <iso>', 'evaluate the selection at this time (ISO 8601 with zone, or YYYY-MM-DD for midnight UTC)')
    .option('--dry-run', 'print the composed SQL and the counts; write and deliver nothing')
    .option('--json', 'print the summary as JSON')
    .option('--verbose', 'log at debug level')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (opts: { profile: string; config?: string; now?: string; dryRun?: boolean; json?: boolean; verbose?: boolean }) => {
      const now = opts.now === undefined ? io.clock() : parseNowOption(opts.now);
      if (!now) throw new SbeError('USAGE', `--now "${opts.now}" is not an ISO 8601 time with a zone (like 2026-12-04T02:00:00Z) or a date`);
      const config = await withConfig(opts.config, opts.verbose);
      const registry = await loadRegistry(config.rulesDir);
      const profile = await resolveProfile(opts.profile, config.profilesDir, registry);
      const ledger = opts.dryRun ? undefined : await Ledger.open(config.stateDir, config.ledger ? { url: config.ledger } : {});
      let summary: ExportSummary;
      try {
        summary = await runExport({ profile, config, now, dryRun: opts.dryRun ?? false, logger, ...(ledger ? { ledger } : {}) });
      } finally {
        await ledger?.close();
      }
      if (opts.json) {
        io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        if (opts.dryRun) io.stdout.write(`-- selection SQL (${sourceTarget(profile, config).dialect})\n${summary.sql}\n`);
        printSummary(io.stdout, summary, profile.currency, opts.dryRun ?? false);
      }
    });

  program
    .command('validate')
    .description('Check profile files; prints each problem with file, line and column. Exit 2 when any file is invalid.')
    .argument('<file...>', 'profile files')
    .option('--config <file>', 'config file, for the site rules directory')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (files: string[], opts: { config?: string }) => {
      const config = await withConfig(opts.config);
      const registry = await loadRegistry(config.rulesDir);
      const seenIds = new Map<string, string>();
      for (const file of files) {
        try {
          const profile = await loadProfileFile(file, registry);
          const other = seenIds.get(profile.id);
          if (other) throw new SbeError('PROFILE_INVALID', `${profile.file}: profile id "${profile.id}" is already used by ${other}`);
          seenIds.set(profile.id, profile.file);
          io.stdout.write(`${file}: ok (profile ${profile.id}, ${profile.rules.length} rule(s), delivery ${profile.delivery.transport.id})\n`);
        } catch (error) {
          if (!(error instanceof SbeError)) throw error;
          io.stdout.write(`${error.describe()}\n`);
          exitCode = Math.max(exitCode, error.exitCode);
        }
      }
    });

  program
    .command('status')
    .description('Recent runs from the ledger, newest first, per profile: state, users, file, attempts, last error.')
    .option('--config <file>', 'config file')
    .option('--profile <id>', 'only this profile')
    .option('--limit <n>', 'runs per profile', positiveInteger('--limit'), 10)
    .option('--json', 'print the runs as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (opts: { config?: string; profile?: string; limit: number; json?: boolean }) => {
      const config = await withConfig(opts.config);
      const ledger = await Ledger.open(config.stateDir, config.ledger ? { url: config.ledger } : {});
      try {
        const runs = await ledger.recentRuns({ ...(opts.profile ? { profileId: opts.profile } : {}), limit: 10_000 });
        const byProfile = new Map<string, RunRecord[]>();
        for (const run of runs) {
          const list = byProfile.get(run.profileId) ?? [];
          if (list.length < opts.limit) list.push(run);
          byProfile.set(run.profileId, list);
        }
        if (opts.json) {
          io.stdout.write(`${JSON.stringify(Object.fromEntries(byProfile), null, 2)}\n`);
          return;
        }
        if (byProfile.size === 0) io.stdout.write(`no runs recorded in ${ledger.target.redacted}\n`);
        for (const [profileId, list] of [...byProfile].sort(([a], [b]) => (a < b ? -1 : 1))) {
          io.stdout.write(`profile ${profileId}\n`);
          for (const run of list) {
            const details = [
              run.users === null ? '' : `${run.users} users`,
              run.fileName ?? '',
              run.attempts > 0 ? `${run.attempts} attempt(s)` : '',
              run.lastError ? `last error: ${run.lastError.split('\n')[0]}` : '',
            ].filter(Boolean).join(', ');
            io.stdout.write(`  ${run.runId.padEnd(40)} ${run.state.padEnd(11)} ${details}\n`);
          }
        }
      } finally {
        await ledger.close();
      }
    });

  registerDaemonCommands(program, { io, withConfig });
  registerSigningCommands(program, { stdout: io.stdout, stderr: io.stderr });

  const db = program.command('db').description('Manage the native source database (SQLite by default).');
  const databaseOption = () => new Option('--database <url>', "database URL (default: the config's database, else sqlite in the state directory)");
  db.command('migrate')
    .description('Create or upgrade the native schema (Knex migrations; SQLite, PostgreSQL or MariaDB).')
    .addOption(databaseOption())
    .option('--config <file>', 'config file')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (opts: { database?: string; config?: string }) => {
      const config = await withConfig(opts.config);
      const target = parseDatabaseUrl(opts.database ?? config.database, opts.database ? process.cwd() : config.baseDir);
      const knex = openDatabase(target, { create: true });
      try {
        const applied = await migrateLatest(knex).catch((error: unknown) => {
          throw new SbeError('SOURCE_QUERY', `migrating ${target.redacted}: ${(error as Error).message}`, { cause: error });
        });
        io.stdout.write(applied.length ? `${target.redacted}: applied ${applied.join(', ')}\n` : `${target.redacted}: already up to date\n`);
      } finally {
        await knex.destroy();
      }
    });
  db.command('seed')
    .description('Insert reference codes (user groups, block types); with --demo also realistic synthetic users. Migrates first.')
    .addOption(databaseOption())
    .option('--config <file>', 'config file')
    .option('--demo', 'add synthetic users, identifiers, blocks and fines (the database must hold no users)')
    .option('--users <n>', 'number of demo users', positiveInteger('--users'), 1000)
    .option('--seed <n>', 'random seed: the same seed gives the same data', positiveInteger('--seed'), 1)
    .option('--currency <code>', 'currency of the demo fines', 'USD')
    .option('--now <iso>', 'demo timestamps spread over the two years before this time')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (opts: { database?: string; config?: string; demo?: boolean; users: number; seed: number; currency: string; now?: string }) => {
      const now = opts.now === undefined ? io.clock() : parseNowOption(opts.now);
      if (!now) throw new SbeError('USAGE', `--now "${opts.now}" is not an ISO 8601 time with a zone or a date`);
      const config = await withConfig(opts.config);
      const target = parseDatabaseUrl(opts.database ?? config.database, opts.database ? process.cwd() : config.baseDir);
      const knex = openDatabase(target, { create: true });
      try {
        await migrateLatest(knex);
        await seedReferenceData(knex);
        if (opts.demo) {
          const started = Date.now();
          const counts = await seedDemo(knex, { users: opts.users, seed: opts.seed, currency: opts.currency, now, dialect: target.dialect });
          io.stdout.write(`${target.redacted}: seeded ${counts.users} users, ${counts.identifiers} identifiers, ${counts.blocks} blocks, ${counts.fines} fines/fees in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        } else {
          io.stdout.write(`${target.redacted}: reference codes present\n`);
        }
      } catch (error) {
        throw error instanceof SbeError ? error : new SbeError('SOURCE_QUERY', `seeding ${target.redacted}: ${(error as Error).message}`, { cause: error });
      } finally {
        await knex.destroy();
      }
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; every usage error is invalid input.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.invalidInput;
    }
    if (error instanceof SbeError) {
      logger.error(error.describe(), { code: error.code });
    } else {
      logger.error(`unexpected error: ${(error as Error)?.stack ?? String(error)}`);
    }
    return exitCodeOf(error);
  }
}
