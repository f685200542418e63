import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { openDatabase, parseDatabaseUrl, type DialectName } from '../../daemon/database';
import { migrateLatest } from '../../daemon/migrations';
import { seedReferenceData } from '../../daemon/seed';

/** A fresh, migrated native source on one dialect. */
export interface DialectSource {
  dialect: DialectName;
  url: string;
  knex: Knex;
  drop(): Promise<void>;
}

/** The database servers of this run, each with its URL from PG_URL / MYSQL_URL (undefined: not given, skip). */
export const SERVERS = [
  { dialect: 'pg', url: process.env.PG_URL },
  { dialect: 'mysql', url: process.env.MYSQL_URL },
] as const;

/** The dialects this run can test: SQLite always; PostgreSQL and MariaDB when PG_URL / MYSQL_URL are set. */
export function availableDialects(env: NodeJS.ProcessEnv = process.env): DialectName[] {
  return ['sqlite', ...(env.PG_URL ? (['pg'] as const) : []), ...(env.MYSQL_URL ? (['mysql'] as const) : [])];
}

/** The same server URL naming another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Creates an empty database named `name` (suffixed with the pid, so parallel runs do not
 * collide) on the server of PG_URL / MYSQL_URL, or a temp SQLite file; migrates it.
 */
export async function createDialectSource(dialect: DialectName, name: string, options: { migrate?: boolean } = {}): Promise<DialectSource> {
  const database = `${name}_${process.pid}`;
  let url: string;
  let drop: () => Promise<void>;
  if (dialect === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
    url = `sqlite://${path.join(dir, 'library.db')}`;
    drop = async () => fs.rmSync(dir, { recursive: true, force: true });
  } else {
    const adminUrl = dialect === 'pg' ? process.env.PG_URL! : process.env.MYSQL_URL!;
    const admin = knexFactory(parseDatabaseUrl(adminUrl).knexConfig);
    const quote = dialect === 'pg' ? `"${database}"` : `\`${database}\``;
    await admin.raw(`drop database if exists ${quote}`);
    await admin.raw(`create database ${quote}${dialect === 'mysql' ? ' character set utf8mb4' : ''}`);
    await admin.destroy();
    url = withDatabase(adminUrl, database);
    drop = async () => {
      const again = knexFactory(parseDatabaseUrl(adminUrl).knexConfig);
      await again.raw(`drop database if exists ${quote}${dialect === 'pg' ? ' with (force)' : ''}`);
      await again.destroy();
    };
  }
  const knex = openDatabase(parseDatabaseUrl(url), { create: true });
  if (options.migrate !== false) {
    await migrateLatest(knex);
    await seedReferenceData(knex);
  }
  return {
    dialect,
    url,
    knex,
    async drop() {
      await knex.destroy();
      await drop();
    },
  };
}
