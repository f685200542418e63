import type { Knex } from 'knex';

/**
 * The native source schema (SPEC 2). Keyed text columns are bounded strings so that MariaDB
 * can index them; timestamps are `datetime` (text in SQLite, timestamptz in PostgreSQL,
 * DATETIME(3) in MariaDB); money is integer minor units.
 */
export const name = '001-native-schema';

/**
 * MariaDB/MySQL compare text case-insensitively and pad trailing spaces by default, unlike
 * SQLite and PostgreSQL. A binary, no-pad collation makes `user_group IN ('UG')` and the
 * match-id type mean the same on every dialect.
 */
async function binaryCollation(knex: Knex): Promise<string | undefined> {
  if (knex.client.config.client !== 'mysql2') return undefined;
  const [rows] = (await knex.raw('select version() as version')) as [{ version: string }[]];
  return /mariadb/i.test(rows[0]?.version ?? '') ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
}

export async function up(knex: Knex): Promise<void> {
  // SQLite's CURRENT_TIMESTAMP takes no precision argument.
  const now = knex.client.config.client === 'sqlite3' ? knex.fn.now() : knex.fn.now(3);
  const collation = await binaryCollation(knex);
  const createTable = (name: string, build: (t: Knex.CreateTableBuilder) => void) => knex.schema.createTable(name, (t) => {
    if (collation) {
      t.charset('utf8mb4');
      t.collate(collation);
    }
    build(t);
  });
  await createTable('user_groups', (t) => {
    t.string('code', 64).primary();
    t.text('description');
  });
  await createTable('block_types', (t) => {
    t.string('code', 64).primary();
    t.text('description');
  });
  await createTable('users', (t) => {
    t.increments('id').primary();
    t.string('primary_id', 255).notNullable().unique();
    t.text('first_name');
    t.text('last_name');
    t.string('user_group', 64).nullable().references('code').inTable('user_groups');
    t.string('account_type', 16).notNullable();
    t.string('status', 16).notNullable().defaultTo('ACTIVE');
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(now);
    t.datetime('updated_at', { precision: 3 }).notNullable().defaultTo(now);
    t.index(['user_group']);
  });
  await createTable('user_identifiers', (t) => {
    t.integer('user_id').unsigned().notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.string('id_type', 64).notNullable();
    t.string('value', 255).notNullable();
    t.primary(['user_id', 'id_type']);
    t.unique(['id_type', 'value']);
  });
  await createTable('user_blocks', (t) => {
    t.increments('id').primary();
    t.integer('user_id').unsigned().notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.string('block_type', 64).notNullable().references('code').inTable('block_types');
    t.text('description');
    t.text('note');
    t.string('status', 16).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('expires_at', { precision: 3 }).nullable();
    t.index(['user_id']);
  });
  await createTable('fines_fees', (t) => {
    t.increments('id').primary();
    t.integer('user_id').unsigned().notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.string('fee_type', 64);
    t.string('status', 16).notNullable();
    t.bigInteger('original_amount_minor');
    t.bigInteger('balance_minor').notNullable();
    t.string('currency', 3).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.index(['user_id', 'status']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['fines_fees', 'user_blocks', 'user_identifiers', 'users', 'block_types', 'user_groups']) {
    await knex.schema.dropTableIfExists(table);
  }
}
