import type { Knex } from 'knex';
import * as nativeSchema from './001-native-schema';

interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Registered explicitly, in order: no folder scan that could pick up `.map` or stale files. */
const migrations: readonly Migration[] = [nativeSchema];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (migration) => migration.name,
  getMigration: async (migration) => migration,
};

/** Runs every pending migration of the native schema; returns the names applied. */
export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({ migrationSource, tableName: 'sis_block_export_migrations' })) as [number, string[]];
  return applied;
}
