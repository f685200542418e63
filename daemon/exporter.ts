import fs from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { compareCodePoints } from './codePoints';
import type { Config } from './config';
import { checkSqliteTimestamps } from './dataChecks';
import { checkConnection, openDatabase, parseDatabaseUrl, type DatabaseTarget } from './database';
import { dialectFor, type Dialect } from './dialect';
import { SbeError, wrapError } from './errors';
import type { Logger } from './logger';
import { formatMinor, toMinor } from './money';
import { AtomicOutputFile } from './outputFile';
import type { Profile } from './profiles';
import { groupUsers, streamRows, type SelectedUser } from './rowSource';
import { composeSelection, matchIdTypeOf, nativeRelations } from './selection';
import { compactTimestamp, formatExportTimestamp, parseStoredTimestamp } from './timestamps';
import { ExportXmlWriter, type ExportUser } from './xmlWriter';

export interface ExportOptions {
  profile: Profile;
  config: Config;
  /** The run time: the scheduled time, or `--now`. The selection is evaluated at it. */
  now: Date;
  dryRun?: boolean;
  logger: Logger;
}

export interface ExportSummary {
  runId: string;
  users: number;
  blocks: number;
  skippedMissingMatchId: number;
  activeBalanceTotal: string;
  droppedCharacters: number;
  matchIdType: string;
  /** Present unless dry run. */
  file?: { path: string; name: string; bytes: number; sha256: string };
  destination?: string;
  /** The composed SQL with its bindings inlined (for `--dry-run`). */
  sql: string;
}

export const NATIVE_TABLES = ['users', 'user_identifiers', 'user_blocks', 'fines_fees'] as const;

/** The source a profile reads: its own `database`, relative to the profile, else the config's. */
export function sourceTarget(profile: Profile, config: Config): DatabaseTarget {
  return profile.database
    ? parseDatabaseUrl(profile.database, path.dirname(profile.file))
    : parseDatabaseUrl(config.database, config.baseDir);
}

export function expandFileName(pattern: string, values: { profile: string; runId: string; date: string }): string {
  return pattern.replace(/\{(profile|runId|date)\}/g, (_all, key: keyof typeof values) => values[key]);
}

/**
 * Claims a unique, sortable run id `<profile>-<YYYYMMDDTHHMMSSZ>[-N]` by creating its outbox
 * directory (mkdir is atomic: two runs cannot take the same id).
 */
export async function claimRunId(outboxDir: string, profileId: string, now: Date): Promise<{ runId: string; dir: string }> {
  await fs.mkdir(outboxDir, { recursive: true, mode: 0o750 });
  const base = `${profileId}-${compactTimestamp(now)}`;
  for (let n = 1; ; n++) {
    const runId = n === 1 ? base : `${base}-${n}`;
    const dir = path.join(outboxDir, runId);
    try {
      await fs.mkdir(dir, { mode: 0o750 });
      return { runId, dir };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

function exportTimestamp(value: string | Date, where: string): string {
  const date = parseStoredTimestamp(value);
  if (!date) throw new SbeError('SOURCE_DATA', `unreadable timestamp ${JSON.stringify(value)} in ${where}`);
  return formatExportTimestamp(date);
}

function toExportUser(user: SelectedUser, userId: string, activeMinor: bigint, currency: string): ExportUser {
  return {
    userId,
    primaryId: user.primaryId,
    firstName: user.firstName,
    lastName: user.lastName,
    userGroup: user.userGroup,
    accountType: user.accountType,
    activeBalance: formatMinor(activeMinor, currency),
    blocks: user.blocks.map((block) => ({
      blockType: block.blockType,
      description: block.description,
      note: block.note,
      createdDate: exportTimestamp(block.createdAt, `user_blocks row id ${block.id}`),
      expiryDate: block.expiresAt === null ? null : exportTimestamp(block.expiresAt, `user_blocks row id ${block.id}`),
    })),
  };
}

async function checkNativeTables(db: Knex, target: DatabaseTarget): Promise<void> {
  const missing: string[] = [];
  for (const table of NATIVE_TABLES) if (!(await db.schema.hasTable(table))) missing.push(table);
  if (missing.length > 0) {
    throw new SbeError('SOURCE_QUERY', `${target.redacted} lacks the table(s) ${missing.join(', ')} of the native schema (run "sis-block-export db migrate --database URL" to create them)`);
  }
}

/** Opens the profile's source, checks it answers and holds readable data. The caller destroys it. */
export async function openSource(profile: Profile, config: Config): Promise<{ db: Knex; dialect: Dialect; target: DatabaseTarget }> {
  const target = sourceTarget(profile, config);
  const db = openDatabase(target, { create: false });
  try {
    await checkConnection(db, target);
    await checkNativeTables(db, target);
    const dialect = dialectFor(target.dialect, db);
    await checkSqliteTimestamps(db, dialect);
    return { db, dialect, target };
  } catch (error) {
    await db.destroy();
    throw wrapError('SOURCE_QUERY', `checking the source ${target.redacted}`, error);
  }
}

/**
 * Runs one export: selects, streams the XML into the outbox (temp name, fsync, rename) and
 * delivers it with the profile's transport. With `dryRun` it only counts.
 */
export async function runExport(options: ExportOptions): Promise<ExportSummary> {
  const { profile, config, now, logger } = options;
  const { db, dialect } = await openSource(profile, config);
  const matchIdType = matchIdTypeOf(profile.rules);
  let output: AtomicOutputFile | undefined;
  let runId = `${profile.id}-${compactTimestamp(now)}`;
  let outboxDir: string | undefined;
  let committed = false;
  try {
    const query = composeSelection({ knex: db, dialect, relations: nativeRelations, rules: profile.rules, now, currency: profile.currency });
    const sql = query.toString();
    if (!options.dryRun) {
      ({ runId, dir: outboxDir } = await claimRunId(path.join(config.stateDir, 'outbox'), profile.id, now));
    }
    const log = logger.child({ profile: profile.id, run: runId });
    log.info(options.dryRun ? 'dry run started' : 'export started', { now: now.toISOString() });
    const fileName = expandFileName(profile.output.fileName, { profile: profile.id, runId, date: compactTimestamp(now).slice(0, 8) });
    if (outboxDir) output = new AtomicOutputFile(path.join(outboxDir, fileName));

    const writer = new ExportXmlWriter();
    await output?.write(writer.prolog());
    await output?.write(writer.open({ currency: profile.currency, generatedAt: formatExportTimestamp(now), matchIdType, profile: profile.id, runId }));
    let users = 0;
    let blocks = 0;
    let total = 0n;
    let previousUserId: string | undefined;
    const skipped: string[] = [];
    let skippedCount = 0;
    try {
      for await (const user of groupUsers(streamRows(db, dialect, query))) {
        if (user.userId === null) {
          skippedCount++;
          if (skipped.length < 10) skipped.push(user.primaryId);
          log.debug('user skipped: no match id', { primaryId: user.primaryId, matchIdType });
          continue;
        }
        if (previousUserId !== undefined && compareCodePoints(previousUserId, user.userId) > 0) {
          throw new SbeError('INTERNAL', `the selection is not in code-point order of userId ("${previousUserId}" before "${user.userId}")`);
        }
        previousUserId = user.userId;
        const activeMinor = toMinor(user.activeMinor);
        total += activeMinor;
        users++;
        blocks += user.blocks.length;
        const chunk = writer.user(toExportUser(user, user.userId, activeMinor, profile.currency));
        if (output) await output.write(chunk);
      }
    } catch (error) {
      throw wrapError('SOURCE_QUERY', 'reading the selection', error);
    }
    const activeBalanceTotal = formatMinor(total, profile.currency);
    await output?.write(writer.summary({ users, blocks, activeBalanceTotal, skippedMissingMatchId: skippedCount }));
    await output?.write(writer.close());
    if (skippedCount > 0) {
      log.warn(`${skippedCount} user(s) skipped: no ${matchIdType} identifier`, { skipped: skippedCount, examples: skipped.join(',') });
    }
    if (writer.droppedCharacters > 0) {
      log.warn(`${writer.droppedCharacters} character(s) that XML cannot carry were dropped`, { dropped: writer.droppedCharacters });
    }
    const summary: ExportSummary = {
      runId, users, blocks, skippedMissingMatchId: skippedCount, activeBalanceTotal, droppedCharacters: writer.droppedCharacters, matchIdType, sql,
    };
    if (!output) {
      log.info('dry run finished', { users, blocks, skipped: skippedCount });
      return summary;
    }
    const sha256 = await output.commit().catch((error: unknown) => {
      throw wrapError('OUTPUT_WRITE', `writing ${output!.finalPath}`, error);
    });
    committed = true;
    summary.file = { path: output.finalPath, name: fileName, bytes: output.bytes, sha256 };
    log.info('export built', { users, blocks, bytes: output.bytes, file: output.finalPath });

    const transport = profile.delivery.transport.create(profile.delivery.options);
    summary.destination = transport.describe();
    await transport.deliver([{ localPath: output.finalPath, name: fileName, size: output.bytes }], { logger: log });
    log.info('export delivered', { to: summary.destination, file: fileName });
    return summary;
  } catch (error) {
    // A built export stays in the outbox (delivery is retried from there); a half-built one goes.
    if (!committed) {
      await output?.discard();
      if (outboxDir) await fs.rm(outboxDir, { recursive: true, force: true });
    }
    throw error;
  } finally {
    await db.destroy();
  }
}
