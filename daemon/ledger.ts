import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { openDatabase, parseDatabaseUrl, type DatabaseTarget } from './database';
import { SbeError } from './errors';
import { compactTimestamp } from './timestamps';

/**
 * The run ledger: one row per run, in the daemon's own database (SQLite in the state
 * directory by default), separate from the source. States:
 *
 *   building -> built -> delivering -> delivered
 *                 |          |-> failed (delivery; the file waits in the outbox, retried next time)
 *                 |-> superseded (a newer snapshot of the profile was built first; never delivered)
 *   building -> failed (build; no file)      building -> interrupted (shutdown; rebuilt next start)
 */
export const RUN_STATES = ['building', 'built', 'delivering', 'delivered', 'failed', 'superseded', 'interrupted'] as const;
export type RunState = (typeof RUN_STATES)[number];

/** States of a run whose built file may still have to be delivered (when it has files: a failed build has none). */
const PENDING_STATES: readonly RunState[] = ['built', 'delivering', 'failed'];

/** Runs with a built snapshot that has not been delivered. */
function whereUndelivered(query: Knex.QueryBuilder): Knex.QueryBuilder {
  return query.whereIn('state', PENDING_STATES).whereNotNull('files');
}

export interface LedgerFile {
  name: string;
  localPath: string;
  size: number;
}

export interface RunRecord {
  runId: string;
  profileId: string;
  runTime: Date;
  scheduled: boolean;
  state: RunState;
  /** Files to deliver, in delivery order; the export itself is last. Empty until built. */
  files: LedgerFile[];
  fileName: string | null;
  size: number | null;
  sha256: string | null;
  users: number | null;
  blocks: number | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

interface RunRow {
  run_id: string;
  profile_id: string;
  run_time: string;
  scheduled: number | boolean;
  state: RunState;
  files: string | null;
  file_name: string | null;
  size: number | string | null;
  sha256: string | null;
  users: number | null;
  blocks: number | null;
  attempts: number;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

const TABLE = 'sbe_runs';
const CLAIMS = 'sbe_claims';

/** Who holds a claim or lock: host and pid, for people reading the ledger. */
export const INSTANCE_ID = `${os.hostname()}:${process.pid}`;

/** Two 32-bit keys for a profile's advisory lock (PostgreSQL takes a pair of int4). */
function lockKeys(profileId: string): [number, number] {
  return [0x5be0, createHash('sha256').update(profileId).digest().readInt32BE(0)];
}

/** A lock held on a dedicated connection: if this process dies, the server releases it. */
interface HeldLock {
  release(): Promise<void>;
}

const ledgerMigrations = [
  {
    name: '001-runs',
    async up(knex: Knex) {
      await knex.schema.createTable(TABLE, (t) => {
        t.string('run_id', 160).primary();
        t.string('profile_id', 64).notNullable();
        // ISO 8601 UTC text with milliseconds: sorts as time, identical on every dialect.
        t.string('run_time', 24).notNullable();
        t.boolean('scheduled').notNullable().defaultTo(false);
        t.string('state', 16).notNullable();
        t.text('files');
        t.string('file_name', 255);
        t.bigInteger('size');
        t.string('sha256', 64);
        t.integer('users');
        t.integer('blocks');
        t.integer('attempts').notNullable().defaultTo(0);
        t.text('last_error');
        t.string('created_at', 24).notNullable();
        t.string('updated_at', 24).notNullable();
        t.string('delivered_at', 24);
        t.index(['profile_id', 'run_time']);
        t.index(['state']);
      });
    },
    async down(knex: Knex) {
      await knex.schema.dropTableIfExists(TABLE);
    },
  },
  {
    // One row per scheduled tick of a profile: the first instance to insert it runs the tick.
    name: '002-claims',
    async up(knex: Knex) {
      await knex.schema.createTable(CLAIMS, (t) => {
        t.string('profile_id', 64).notNullable();
        t.string('run_time', 24).notNullable();
        t.string('holder', 255).notNullable();
        t.string('claimed_at', 24).notNullable();
        t.primary(['profile_id', 'run_time']);
      });
    },
    async down(knex: Knex) {
      await knex.schema.dropTableIfExists(CLAIMS);
    },
  },
];

const migrationSource: Knex.MigrationSource<(typeof ledgerMigrations)[number]> = {
  getMigrations: async () => ledgerMigrations,
  getMigrationName: (migration) => migration.name,
  getMigration: async (migration) => migration,
};

function isUniqueViolation(error: unknown): boolean {
  const { code, errno } = error as { code?: string; errno?: number };
  return code === 'SQLITE_CONSTRAINT' || code === '23505' || code === 'ER_DUP_ENTRY' || errno === 1062;
}

function toRecord(row: RunRow): RunRecord {
  return {
    runId: row.run_id,
    profileId: row.profile_id,
    runTime: new Date(row.run_time),
    scheduled: Boolean(row.scheduled),
    state: row.state,
    files: row.files ? (JSON.parse(row.files) as LedgerFile[]) : [],
    fileName: row.file_name,
    size: row.size === null ? null : Number(row.size),
    sha256: row.sha256,
    users: row.users,
    blocks: row.blocks,
    attempts: row.attempts,
    lastError: row.last_error,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    deliveredAt: row.delivered_at ? new Date(row.delivered_at) : null,
  };
}

/** One line of an error for the ledger: no stack, bounded. */
function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
}

export class Ledger {
  private constructor(
    private readonly db: Knex,
    readonly target: DatabaseTarget,
    private readonly clock: () => Date,
  ) {}

  /** Opens (creating and migrating) the ledger: `url`, else `ledger.db` in the state directory. */
  static async open(stateDir: string, options: { url?: string; clock?: () => Date } = {}): Promise<Ledger> {
    const target = parseDatabaseUrl(options.url ?? `sqlite://${path.join(stateDir, 'ledger.db')}`, stateDir);
    const db = openDatabase(target, { create: true });
    try {
      await db.migrate.latest({ migrationSource, tableName: 'sbe_ledger_migrations' });
    } catch (error) {
      await db.destroy();
      throw new SbeError('INTERNAL', `opening the run ledger ${target.redacted}: ${(error as Error).message}`, { cause: error });
    }
    return new Ledger(db, target, options.clock ?? (() => new Date()));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  private readonly localLocks = new Set<string>();

  /**
   * Runs `fn` while holding the profile's lock, shared by every instance that uses this
   * ledger: a PostgreSQL advisory lock or a MariaDB named lock on a dedicated connection (the
   * server drops it if the holder dies), or an in-process lock for a SQLite ledger (one host,
   * one daemon). Returns undefined, without running `fn`, when another holder has it.
   */
  async withProfileLock<T>(profileId: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const lock = await this.tryLock(profileId);
    if (!lock) return undefined;
    try {
      return { value: await fn() };
    } finally {
      await lock.release();
    }
  }

  private async tryLock(profileId: string): Promise<HeldLock | undefined> {
    if (this.localLocks.has(profileId)) return undefined;
    const dialect = this.target.dialect;
    if (dialect === 'sqlite') {
      this.localLocks.add(profileId);
      return { release: async () => void this.localLocks.delete(profileId) };
    }
    const client = this.db.client as { acquireConnection(): Promise<unknown>; releaseConnection(conn: unknown): Promise<void> };
    const conn = await client.acquireConnection();
    const query = (sql: string, bindings: unknown[]) => this.db.raw(sql, bindings as Knex.RawBinding[]).connection(conn as never);
    try {
      let acquired: boolean;
      if (dialect === 'pg') {
        const result = (await query('select pg_try_advisory_lock(?, ?) as ok', lockKeys(profileId))) as { rows: { ok: boolean }[] };
        acquired = result.rows[0]!.ok;
      } else {
        const [rows] = (await query('select get_lock(?, 0) as ok', [`sis-block-export:${profileId}`])) as [{ ok: number }[]];
        acquired = rows[0]!.ok === 1;
      }
      if (!acquired) {
        await client.releaseConnection(conn);
        return undefined;
      }
      this.localLocks.add(profileId);
      return {
        release: async () => {
          this.localLocks.delete(profileId);
          try {
            if (dialect === 'pg') await query('select pg_advisory_unlock(?, ?)', lockKeys(profileId));
            else await query('select release_lock(?)', [`sis-block-export:${profileId}`]);
          } finally {
            await client.releaseConnection(conn);
          }
        },
      };
    } catch (error) {
      await client.releaseConnection(conn);
      throw error;
    }
  }

  /**
   * Claims a scheduled tick of a profile for this instance. False when another instance
   * (sharing this ledger) claimed it first: that one builds and delivers it.
   */
  async claimScheduledTick(profileId: string, runTime: Date): Promise<boolean> {
    try {
      await this.db(CLAIMS).insert({ profile_id: profileId, run_time: runTime.toISOString(), holder: INSTANCE_ID, claimed_at: this.now() });
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  private now(): string {
    return this.clock().toISOString();
  }

  /**
   * Records a new run in state `building` under a unique, sortable id
   * `<profile>-<YYYYMMDDTHHMMSSZ>`, with `-2`, `-3`, ... when that id is taken.
   */
  async claimRun(profileId: string, runTime: Date, scheduled: boolean): Promise<string> {
    const base = `${profileId}-${compactTimestamp(runTime)}`;
    for (let n = 1; n < 10_000; n++) {
      const runId = n === 1 ? base : `${base}-${n}`;
      const now = this.now();
      try {
        await this.db(TABLE).insert({
          run_id: runId,
          profile_id: profileId,
          run_time: runTime.toISOString(),
          scheduled,
          state: 'building',
          attempts: 0,
          created_at: now,
          updated_at: now,
        });
        return runId;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
      }
    }
    throw new SbeError('INTERNAL', `no free run id for ${base}`);
  }

  private async update(runId: string, values: Partial<Record<keyof RunRow, unknown>>): Promise<void> {
    await this.db(TABLE).where('run_id', runId).update({ ...values, updated_at: this.now() });
  }

  /** An interrupted run is built again under its own id. */
  async markRebuilding(runId: string): Promise<void> {
    await this.update(runId, { state: 'building', last_error: null });
  }

  async markBuilt(runId: string, built: { files: LedgerFile[]; sha256: string; users: number; blocks: number }): Promise<void> {
    const exportFile = built.files[built.files.length - 1]!;
    await this.update(runId, {
      state: 'built',
      files: JSON.stringify(built.files),
      file_name: exportFile.name,
      size: exportFile.size,
      sha256: built.sha256,
      users: built.users,
      blocks: built.blocks,
      last_error: null,
    });
  }

  /**
   * Marks every undelivered snapshot of the profile that is older than `runId` as superseded,
   * so that it is never delivered after it. Returns their ids.
   */
  async supersedeOlder(profileId: string, runId: string): Promise<string[]> {
    return this.db.transaction(async (trx) => {
      const newer = (await trx(TABLE).where('run_id', runId).first()) as RunRow | undefined;
      if (!newer) throw new SbeError('INTERNAL', `run ${runId} is not in the ledger`);
      const older = (await trx(TABLE)
        .where('profile_id', profileId)
        .where((w) => whereUndelivered(w).orWhere('state', 'interrupted'))
        .whereNot('run_id', runId)
        .where((w) => w.where('run_time', '<', newer.run_time).orWhere((same) => same.where('run_time', newer.run_time).where('created_at', '<', newer.created_at)))
        .select('run_id')) as { run_id: string }[];
      const ids = older.map((row) => row.run_id);
      if (ids.length > 0) {
        await trx(TABLE).whereIn('run_id', ids).update({ state: 'superseded', last_error: `superseded by ${runId}`, updated_at: this.now() });
      }
      return ids;
    });
  }

  async markDelivering(runId: string): Promise<void> {
    await this.db(TABLE).where('run_id', runId).update({ state: 'delivering', attempts: this.db.raw('attempts + 1'), updated_at: this.now() });
  }

  async markDelivered(runId: string): Promise<void> {
    const now = this.now();
    await this.update(runId, { state: 'delivered', delivered_at: now, last_error: null });
  }

  async markFailed(runId: string, error: unknown): Promise<void> {
    await this.update(runId, { state: 'failed', last_error: errorText(error) });
  }

  async markInterrupted(runId: string, reason: string): Promise<void> {
    await this.update(runId, { state: 'interrupted', last_error: reason });
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const row = (await this.db(TABLE).where('run_id', runId).first()) as RunRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** The newest built-but-undelivered snapshot of the profile, if any. */
  async pendingDelivery(profileId: string): Promise<RunRecord | undefined> {
    const row = (await whereUndelivered(this.db(TABLE).where('profile_id', profileId))
      .orderBy([{ column: 'run_time', order: 'desc' }, { column: 'created_at', order: 'desc' }])
      .first()) as RunRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** Runs cut short by a shutdown, oldest first. */
  async interruptedRuns(profileId?: string): Promise<RunRecord[]> {
    const query = this.db(TABLE).where('state', 'interrupted').orderBy('run_time');
    if (profileId) query.where('profile_id', profileId);
    return ((await query) as RunRow[]).map(toRecord);
  }

  /** Runs still marked building or delivering: after a crash they were cut short. */
  async unfinishedRuns(): Promise<RunRecord[]> {
    return ((await this.db(TABLE).whereIn('state', ['building', 'delivering']).orderBy('run_time')) as RunRow[]).map(toRecord);
  }

  /** The run time of the latest scheduled run of the profile (for missed-run detection). */
  async lastScheduledRunTime(profileId: string): Promise<Date | undefined> {
    const row = (await this.db(TABLE).where({ profile_id: profileId, scheduled: true }).max({ last: 'run_time' }).first()) as { last: string | null } | undefined;
    return row?.last ? new Date(row.last) : undefined;
  }

  async recentRuns(options: { profileId?: string; limit?: number } = {}): Promise<RunRecord[]> {
    const query = this.db(TABLE).orderBy([{ column: 'run_time', order: 'desc' }, { column: 'created_at', order: 'desc' }]).limit(options.limit ?? 20);
    if (options.profileId) query.where('profile_id', options.profileId);
    return ((await query) as RunRow[]).map(toRecord);
  }

  /** Runs whose outbox files are no longer needed and older than `before`. */
  async prunableRuns(profileId: string, before: Date): Promise<RunRecord[]> {
    return ((await this.db(TABLE)
      .where('profile_id', profileId)
      .whereIn('state', ['delivered', 'superseded'])
      .where('updated_at', '<', before.toISOString())
      .whereNotNull('files')) as RunRow[]).map(toRecord);
  }

  /** Forgets the outbox files of a run once they are deleted (the row stays for `status`). */
  async markPruned(runId: string): Promise<void> {
    await this.db(TABLE).where('run_id', runId).update({ files: null });
  }
}
