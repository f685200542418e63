import fs from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { compareCodePoints } from './codePoints';
import type { Config } from './config';
import { checkConnection, openDatabase, parseDatabaseUrl, type DatabaseTarget } from './database';
import { dialectFor, type Dialect } from './dialect';
import { SbeError, wrapError } from './errors';
import type { Logger } from './logger';
import { formatMinor, toMinor } from './money';
import { AtomicOutputFile } from './outputFile';
import { parseDuration } from './duration';
import type { Ledger, LedgerFile, RunRecord } from './ledger';
import { withRetry, type RetryDeps } from './retry';
import { createExportSigner, type ExportSigner } from './signing/exportSigner';
import type { RetryOptions } from './transportApi';
import type { Profile } from './profiles';
import { groupUsers, streamRows, type SelectedUser } from './rowSource';
import { composeSelection, matchIdTypeOf, type RelationSource } from './selection';
import { sources } from './sources';
import { compactTimestamp, formatExportTimestamp, parseStoredTimestamp } from './timestamps';
import { ExportXmlWriter, type ExportUser } from './xmlWriter';

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
  /** Set when a scheduled run did not happen (claimed by another instance, or one already running). */
  skipped?: string;
}

/** The source a profile reads: its own `database`, relative to the profile, else the config's. */
export function sourceTarget(profile: Profile, config: Config): DatabaseTarget {
  return profile.database
    ? parseDatabaseUrl(profile.database, path.dirname(profile.file))
    : parseDatabaseUrl(config.database, config.baseDir);
}

export function expandFileName(pattern: string, values: { profile: string; runId: string; date: string }): string {
  return pattern.replace(/\{(profile|runId|date)\}/g, (_all, key: keyof typeof values) => values[key]);
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

export interface OpenSource {
  db: Knex;
  dialect: Dialect;
  target: DatabaseTarget;
  /** The canonical relations, from the profile's source adapter. */
  relations: RelationSource;
}

/** Opens the profile's source, checks it answers and holds readable data. The caller destroys it. */
export async function openSource(profile: Profile, config: Config): Promise<OpenSource> {
  const adapter = sources.get(profile.source);
  if (!adapter) throw new SbeError('PROFILE_INVALID', `${profile.file}: unknown source "${profile.source}"`);
  const target = sourceTarget(profile, config);
  if (!adapter.dialects.includes(target.dialect)) {
    throw new SbeError('PROFILE_INVALID', `${profile.file}: source "${adapter.id}" reads ${adapter.dialects.join(' or ')} databases, not ${target.dialect} (${target.redacted})`);
  }
  const db = openDatabase(target, { create: false });
  try {
    await checkConnection(db, target);
    const dialect = dialectFor(target.dialect, db);
    await adapter.check(db, dialect, target);
    return { db, dialect, target, relations: adapter };
  } catch (error) {
    await db.destroy();
    throw wrapError('SOURCE_QUERY', `checking the source ${target.redacted}`, error);
  }
}

export interface RunDeps {
  config: Config;
  logger: Logger;
  /** Absent only for dry runs. */
  ledger?: Ledger;
  /** Shutdown: a build is abandoned (interrupted), a delivery stops retrying. */
  signal?: AbortSignal;
  retry?: Pick<RetryDeps, 'random' | 'sleep'>;
}

export interface ExportOptions extends RunDeps {
  profile: Profile;
  /** The run time: the scheduled time, or `--now`. The selection is evaluated at it. */
  now: Date;
  dryRun?: boolean;
  /** A run of the schedule (not a manual `export`): counts for missed-run detection. */
  scheduled?: boolean;
  /** Rebuild this run (interrupted before its file was complete) instead of claiming a new id. */
  runId?: string;
}

interface BuiltExport {
  summary: ExportSummary;
  files: LedgerFile[];
  sha256: string;
}

function outboxDir(config: Config, runId: string): string {
  return path.join(config.stateDir, 'outbox', runId);
}

/** Selects and writes the export (or, dry, only counts). The caller owns the source connection. */
async function buildExport(options: ExportOptions, source: OpenSource, runId: string, log: Logger, signer?: ExportSigner): Promise<BuiltExport | ExportSummary> {
  const { profile, config, now } = options;
  const { db, dialect, relations } = source;
  const matchIdType = matchIdTypeOf(profile.rules);
  const query = composeSelection({ knex: db, dialect, relations, rules: profile.rules, now, currency: profile.currency });
  const sql = query.toString();
  const fileName = expandFileName(profile.output.fileName, { profile: profile.id, runId, date: compactTimestamp(now).slice(0, 8) });
  let output: AtomicOutputFile | undefined;
  if (!options.dryRun) {
    const dir = outboxDir(config, runId);
    await fs.mkdir(dir, { recursive: true, mode: 0o750 });
    output = new AtomicOutputFile(path.join(dir, fileName));
  }
  try {
    const writer = new ExportXmlWriter();
    // Everything after the prolog is digested for the enveloped signature as it is written.
    const write = async (chunk: string): Promise<void> => {
      signer?.update(chunk);
      await output?.write(chunk);
    };
    await output?.write(writer.prolog());
    await write(writer.open({ currency: profile.currency, generatedAt: formatExportTimestamp(now), matchIdType, profile: profile.id, runId }));
    let users = 0;
    let blocks = 0;
    let total = 0n;
    let previousUserId: string | undefined;
    const skipped: string[] = [];
    let skippedCount = 0;
    try {
      for await (const user of groupUsers(streamRows(db, dialect, query))) {
        if (options.signal?.aborted) throw new SbeError('ABORTED', `export of ${runId} abandoned: shutting down`);
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
        if (output) await write(writer.user(toExportUser(user, user.userId, activeMinor, profile.currency)));
      }
    } catch (error) {
      throw wrapError('SOURCE_QUERY', 'reading the selection', error);
    }
    const activeBalanceTotal = formatMinor(total, profile.currency);
    await write(writer.summary({ users, blocks, activeBalanceTotal, skippedMissingMatchId: skippedCount }));
    if (signer) await output?.write(signer.signatureBlock());
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
    if (!output) return summary;
    const sha256 = await output.commit().catch((error: unknown) => {
      throw wrapError('OUTPUT_WRITE', `writing ${output!.finalPath}`, error);
    });
    summary.file = { path: output.finalPath, name: fileName, bytes: output.bytes, sha256 };
    // Companions (the OpenPGP .asc) are delivered first, so a poller that sees the export finds them.
    const companions: LedgerFile[] = [];
    for (const companion of signer ? await signer.signCompanions(output.finalPath) : []) {
      companions.push({ name: path.basename(companion), localPath: companion, size: (await fs.stat(companion)).size });
    }
    log.info('export built', { users, blocks, bytes: output.bytes, file: output.finalPath, signed: signer ? signer.options.method : 'no' });
    return { summary, files: [...companions, { name: fileName, localPath: output.finalPath, size: output.bytes }], sha256 };
  } catch (error) {
    await output?.discard();
    throw error;
  }
}

/**
 * Delivers a built run with its profile's transport, retrying transient failures, and records
 * the outcome. Refusals and exhausted retries leave the run `failed` with its file in the
 * outbox; the next run of the profile (or the next daemon start) delivers it unless a newer
 * snapshot supersedes it first.
 */
export async function deliverRun(run: RunRecord, profile: Profile, deps: RunDeps & { ledger: Ledger }): Promise<string> {
  const { ledger, logger, signal } = deps;
  if (run.files.length === 0) throw new SbeError('INTERNAL', `run ${run.runId} has no built files to deliver`);
  const log = logger.child({ profile: profile.id, run: run.runId });
  const transport = profile.delivery.transport.create(profile.delivery.options);
  const destination = transport.describe();
  const policy = (profile.delivery.options.retry as RetryOptions | undefined) ?? { attempts: 1, initialDelay: '1s', maxDelay: '1s' };
  await ledger.markDelivering(run.runId);
  try {
    await withRetry(`delivering ${run.fileName} to ${destination}`, policy, async (attempt) => {
      if (attempt > 1) await ledger.markDelivering(run.runId);
      await transport.deliver(run.files.map((file) => ({ localPath: file.localPath, name: file.name, size: file.size })), { logger: log, ...(signal ? { signal } : {}) });
    }, { logger: log, ...(signal ? { signal } : {}), ...deps.retry });
  } catch (error) {
    await ledger.markFailed(run.runId, error);
    log.error(`delivery failed; the export stays in the outbox: ${(error as Error).message}`, { file: run.fileName });
    throw error;
  }
  await ledger.markDelivered(run.runId);
  log.info('export delivered', { to: destination, file: run.fileName });
  await pruneOutbox(profile.id, deps);
  return destination;
}

/** Deletes the outbox files of delivered and superseded runs older than the retention period. */
async function pruneOutbox(profileId: string, deps: RunDeps & { ledger: Ledger }): Promise<void> {
  const before = new Date(Date.now() - parseDuration(deps.config.outboxRetention));
  for (const run of await deps.ledger.prunableRuns(profileId, before)) {
    await fs.rm(outboxDir(deps.config, run.runId), { recursive: true, force: true });
    await deps.ledger.markPruned(run.runId);
    deps.logger.debug('outbox pruned', { profile: profileId, run: run.runId });
  }
}

/**
 * Delivers the newest built-but-undelivered snapshot of the profile, if any (older ones are
 * superseded by it first), holding the profile's lock. For daemon start. Returns undefined
 * when there was nothing to deliver or another instance holds the profile.
 */
export async function deliverPending(profile: Profile, deps: RunDeps & { ledger: Ledger }): Promise<RunRecord | undefined> {
  const result = await deps.ledger.withProfileLock(profile.id, () => deliverPendingLocked(profile, deps));
  return result?.value;
}

/** deliverPending, for a caller that holds the profile's lock. */
async function deliverPendingLocked(profile: Profile, deps: RunDeps & { ledger: Ledger }): Promise<RunRecord | undefined> {
  const pending = await deps.ledger.pendingDelivery(profile.id);
  if (!pending) return undefined;
  const present = await Promise.all(pending.files.map((file) => fs.access(file.localPath).then(() => true, () => false)));
  if (present.includes(false)) {
    // With a shared ledger the snapshot may sit in another host's outbox: that host (or the
    // next snapshot, from either) takes care of it.
    deps.logger.info(`pending snapshot ${pending.runId} is not in this host's outbox; leaving it`, { profile: profile.id, run: pending.runId });
    return undefined;
  }
  const superseded = await deps.ledger.supersedeOlder(profile.id, pending.runId);
  for (const runId of superseded) deps.logger.warn(`snapshot ${runId} superseded by ${pending.runId}; it will not be delivered`, { profile: profile.id, run: runId });
  deps.logger.info(`delivering pending snapshot ${pending.runId}`, { profile: profile.id, run: pending.runId });
  await deliverRun(pending, profile, deps);
  return pending;
}

/**
 * Runs one export of a profile: claims a run id in the ledger, builds the snapshot into the
 * outbox, supersedes older undelivered snapshots, and delivers it. When the build fails, the
 * pending older snapshot (if any) is delivered instead, and the build error is reported.
 * With `dryRun` it only counts (no ledger, no file).
 */
export async function runExport(options: ExportOptions): Promise<ExportSummary> {
  const { profile, logger, ledger } = options;
  if (options.dryRun) {
    const source = await openSource(profile, options.config);
    try {
      const runId = `${profile.id}-${compactTimestamp(options.now)}`;
      const log = logger.child({ profile: profile.id, run: runId });
      log.info('dry run started', { now: options.now.toISOString() });
      const summary = (await buildExport(options, source, runId, log)) as ExportSummary;
      log.info('dry run finished', { users: summary.users, blocks: summary.blocks, skipped: summary.skippedMissingMatchId });
      return summary;
    } finally {
      await source.db.destroy();
    }
  }
  if (!ledger) throw new SbeError('INTERNAL', 'an export needs the run ledger');
  // One run of a profile at a time across every instance sharing the ledger; a scheduled
  // tick is built by the instance that claims it first.
  const locked = await ledger.withProfileLock(profile.id, async (): Promise<ExportSummary> => {
    if (options.scheduled && !options.runId && !(await ledger.claimScheduledTick(profile.id, options.now))) {
      logger.info(`tick ${options.now.toISOString()} already claimed by another instance`, { profile: profile.id });
      return { ...emptySummary(profile), skipped: 'claimed by another instance' };
    }
    return runLocked({ ...options, ledger });
  });
  if (locked) return locked.value;
  if (options.scheduled) {
    logger.warn('skipped: another run of this profile is in progress', { profile: profile.id });
    return { ...emptySummary(profile), skipped: 'another run of this profile is in progress' };
  }
  throw new SbeError('BUSY', `another run of profile ${profile.id} is in progress (in this or another instance sharing the ledger ${ledger.target.redacted}); try again when it has finished`);
}

function emptySummary(profile: Profile): ExportSummary {
  return {
    runId: '', users: 0, blocks: 0, skippedMissingMatchId: 0, activeBalanceTotal: formatMinor(0n, profile.currency), droppedCharacters: 0, matchIdType: matchIdTypeOf(profile.rules), sql: '',
  };
}

async function runLocked(options: ExportOptions & { ledger: Ledger }): Promise<ExportSummary> {
  const { profile, logger, ledger } = options;
  const deps = options;
  // Keys are loaded and checked before a run is recorded: a bad key is a configuration
  // error (exit 2) that builds and delivers nothing.
  const signer = await createExportSigner(profile.output.signing);
  const runId = options.runId ?? (await ledger.claimRun(profile.id, options.now, options.scheduled ?? false));
  if (options.runId) await ledger.markRebuilding(runId);
  const log = logger.child({ profile: profile.id, run: runId });
  log.info('export started', { now: options.now.toISOString(), scheduled: options.scheduled ?? false });
  let built: BuiltExport;
  try {
    const source = await openSource(profile, options.config);
    try {
      built = (await buildExport(options, source, runId, log, signer)) as BuiltExport;
    } finally {
      await source.db.destroy();
    }
  } catch (error) {
    await fs.rm(outboxDir(options.config, runId), { recursive: true, force: true });
    if (options.signal?.aborted || (error instanceof SbeError && error.code === 'ABORTED')) {
      await ledger.markInterrupted(runId, 'interrupted by shutdown before the export was complete');
      log.warn('export interrupted by shutdown; it runs again at the next start');
      throw error;
    }
    await ledger.markFailed(runId, error);
    log.error(`export failed: ${(error as Error).message}`);
    // The older snapshot is the best information the SIS can get now.
    await deliverPendingLocked(profile, deps).catch((pendingError: unknown) => {
      log.error(`delivering the pending older snapshot failed too: ${(pendingError as Error).message}`);
    });
    throw error;
  }
  await ledger.markBuilt(runId, { files: built.files, sha256: built.sha256, users: built.summary.users, blocks: built.summary.blocks });
  for (const older of await ledger.supersedeOlder(profile.id, runId)) {
    log.warn(`snapshot ${older} superseded by ${runId}; it will not be delivered`);
  }
  const record = await ledger.get(runId);
  built.summary.destination = await deliverRun(record!, profile, deps);
  return built.summary;
}
