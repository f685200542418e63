import path from 'node:path';
import fs from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { SbeError } from './errors';

export type DialectName = 'sqlite' | 'pg' | 'mysql';

export interface DatabaseTarget {
  dialect: DialectName;
  /** The URL with any password replaced by `***`: safe for logs and messages. */
  redacted: string;
  knexConfig: Knex.Config;
}

/**
 * Parses a database URL:
 *   sqlite:///abs/path.db, sqlite:relative/path.db (relative to `baseDir`), sqlite::memory:
 *   postgres://user@host:5432/db, postgresql://..., mysql://user@host:3306/db, mariadb://...
 * A password may come from the URL, from `?passwordFile=PATH` (relative to `baseDir`), from
 * `?passwordEnv=NAME`, or from `$PGPASSWORD` / `$MYSQL_PWD`. It never appears in `redacted`.
 */
export function parseDatabaseUrl(url: string, baseDir: string = process.cwd(), options: { readSecrets?: boolean; env?: NodeJS.ProcessEnv } = {}): DatabaseTarget {
  const env = options.env ?? process.env;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'sqlite' || scheme === 'sqlite3') {
    const rest = url.slice(scheme.length + 1);
    let filename: string;
    if (rest === ':memory:') filename = ':memory:';
    else if (rest.startsWith('///')) filename = decodeURIComponent(rest.slice(2));
    else if (rest.startsWith('//')) {
      throw new SbeError('CONFIG_INVALID', `database URL "${url}": use sqlite:///absolute/path.db or sqlite:relative/path.db`);
    } else filename = path.resolve(baseDir, decodeURIComponent(rest));
    if (!filename) throw new SbeError('CONFIG_INVALID', `database URL "${url}" names no file`);
    return {
      dialect: 'sqlite',
      redacted: filename === ':memory:' ? 'sqlite::memory:' : `sqlite://${filename}`,
      knexConfig: {
        client: 'sqlite3',
        connection: { filename },
        useNullAsDefault: true,
        pool: {
          min: 1,
          max: 1,
          afterCreate(conn: { run(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
            // A busy ledger or source must wait, not fail, and referential integrity is on.
            conn.run('PRAGMA foreign_keys = ON', (err) => {
              if (err) return done(err, conn);
              conn.run('PRAGMA busy_timeout = 10000', (err2) => done(err2, conn));
            });
          },
        },
      },
    };
  }
  if (scheme === 'postgres' || scheme === 'postgresql' || scheme === 'mysql' || scheme === 'mariadb') {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (error) {
      throw new SbeError('CONFIG_INVALID', `database URL cannot be parsed: ${redactUrl(url)}`, { cause: error });
    }
    const dialect: DialectName = scheme.startsWith('postgres') ? 'pg' : 'mysql';
    const passwordFile = parsed.searchParams.get('passwordFile');
    const passwordEnv = parsed.searchParams.get('passwordEnv');
    let password = decodeURIComponent(parsed.password) || undefined;
    if (passwordEnv && options.readSecrets !== false) {
      password = env[passwordEnv];
      if (password === undefined) throw new SbeError('CONFIG_INVALID', `database URL ${redactUrl(url)}: the environment variable ${passwordEnv} (passwordEnv) is not set`);
    }
    if (passwordFile && options.readSecrets !== false) {
      const file = path.resolve(baseDir, passwordFile);
      try {
        password = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        throw new SbeError('CONFIG_INVALID', `cannot read the database password file ${file}: ${(error as Error).message}`, { cause: error });
      }
    }
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    if (!database) throw new SbeError('CONFIG_INVALID', `database URL ${redactUrl(url)} names no database`);
    const common = {
      host: parsed.hostname || '127.0.0.1',
      port: parsed.port ? Number(parsed.port) : dialect === 'pg' ? 5432 : 3306,
      user: decodeURIComponent(parsed.username) || (dialect === 'pg' ? 'postgres' : 'root'),
      database,
      // pg reads $PGPASSWORD by itself; mysql2 does not read $MYSQL_PWD, so it is passed on.
      ...(password === undefined ? (dialect === 'mysql' && env.MYSQL_PWD !== undefined ? { password: env.MYSQL_PWD } : {}) : { password }),
    };
    const connection = dialect === 'pg'
      ? { ...common, connectionTimeoutMillis: 10_000, ...(parsed.searchParams.get('ssl') === 'true' ? { ssl: true } : {}) }
      // Dates are exchanged in UTC whatever the host's zone; big sums come back exact, as strings.
      : { ...common, timezone: 'Z', dateStrings: false, supportBigNumbers: true, bigNumberStrings: true, charset: 'utf8mb4', connectTimeout: 10_000 };
    // Sessions run in UTC, so nothing depends on the server's or this host's zone.
    const sessionUtc = dialect === 'pg' ? "set time zone 'UTC'" : "set time_zone = '+00:00'";
    return {
      dialect,
      redacted: redactUrl(url),
      knexConfig: {
        client: dialect === 'pg' ? 'pg' : 'mysql2',
        connection,
        acquireConnectionTimeout: 15_000,
        pool: {
          min: 0,
          max: 4,
          afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
            conn.query(sessionUtc, (err) => done(err, conn));
          },
        },
      },
    };
  }
  throw new SbeError('CONFIG_INVALID', `unsupported database URL "${redactUrl(url)}": use sqlite:, postgres:// or mysql://`);
}

export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

/**
 * Opens a Knex instance. A source is read, never created: with `create: false` a missing
 * SQLite file is an error (SQLite would otherwise create an empty database silently).
 */
/** Knex would print its own copies of errors we already report (with context) on stderr. */
const quietKnexLog = { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined };

export function openDatabase(target: DatabaseTarget, options: { create: boolean }): Knex {
  if (target.dialect === 'sqlite') {
    const filename = (target.knexConfig.connection as { filename: string }).filename;
    if (filename !== ':memory:') {
      if (options.create) fs.mkdirSync(path.dirname(filename), { recursive: true });
      else if (!fs.existsSync(filename)) {
        throw new SbeError('SOURCE_CONNECT', `the SQLite database ${filename} does not exist (create it with "sis-block-export db migrate --database sqlite://${filename}")`);
      }
    }
  }
  return knexFactory({ ...target.knexConfig, log: quietKnexLog });
}

/** Connects once so that "cannot connect" is reported as such (exit 3), not as a query error. */
export async function checkConnection(db: Knex, target: DatabaseTarget): Promise<void> {
  try {
    await db.raw('select 1 as ok');
  } catch (error) {
    throw new SbeError('SOURCE_CONNECT', `cannot connect to ${target.redacted}: ${(error as Error).message}`, { cause: error });
  }
}
