import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { stringify } from 'yaml';
import { openDatabase, parseDatabaseUrl } from '../../daemon/database';
import { dialectFor } from '../../daemon/dialect';
import { migrateLatest } from '../../daemon/migrations';
import { parseProfile, type Profile } from '../../daemon/profiles';
import { builtinRegistry, type Registry } from '../../daemon/registry';
import { groupUsers, streamRows, type SelectedUser } from '../../daemon/rowSource';
import { composeSelection } from '../../daemon/selection';
import nativeRelations from '../../daemon/sources/native';
import { seedReferenceData } from '../../daemon/seed';
import { parseStoredTimestamp } from '../../daemon/timestamps';

/** A user and everything hanging off it, written tersely for tests. */
export interface UserFixture {
  id: number;
  primaryId?: string;
  firstName?: string | null;
  lastName?: string | null;
  group?: string | null;
  accountType?: 'INTERNAL' | 'EXTERNAL';
  status?: string;
  ids?: Record<string, string>;
  blocks?: BlockFixture[];
  fines?: FineFixture[];
}

export interface BlockFixture {
  id?: number;
  type?: string;
  status?: 'ACTIVE' | 'INACTIVE';
  created?: string | Date;
  expires?: string | Date | null;
  description?: string | null;
  note?: string | null;
}

export interface FineFixture {
  id?: number;
  balance: number;
  status?: 'ACTIVE' | 'CLOSED';
  created?: string | Date;
  currency?: string;
}

export interface TestSource {
  knex: Knex;
  url: string;
  dir: string;
  close(): Promise<void>;
}

/** A fresh, migrated SQLite source with the reference codes, in a temp directory. */
export async function createSqliteSource(): Promise<TestSource> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-src-'));
  const url = `sqlite://${path.join(dir, 'library.db')}`;
  const knex = openDatabase(parseDatabaseUrl(url), { create: true });
  await migrateLatest(knex);
  await seedReferenceData(knex);
  return {
    knex,
    url,
    dir,
    async close() {
      await knex.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Row ids for blocks and fines without one: per database, far above seeded ids, the same on every dialect. */
const nextRowIds = new WeakMap<Knex, number>();
function nextRowId(knex: Knex): number {
  const id = nextRowIds.get(knex) ?? 1_000_000;
  nextRowIds.set(knex, id + 1);
  return id;
}

/** SQLite keeps timestamp text as written; the other dialects get the instant it names. */
function timestampFor(knex: Knex, value: string | Date | null | undefined): string | Date | null | undefined {
  if (typeof value !== 'string' || knex.client.config.client === 'sqlite3') return value;
  const date = parseStoredTimestamp(value);
  if (!date) throw new Error(`test fixture timestamp ${value} cannot be stored outside SQLite`);
  return date;
}

export async function insertUsers(knex: Knex, users: readonly UserFixture[]): Promise<void> {
  for (const user of users) {
    await knex('users').insert({
      id: user.id,
      primary_id: user.primaryId ?? `p${user.id}`,
      first_name: user.firstName === undefined ? `First${user.id}` : user.firstName,
      last_name: user.lastName === undefined ? `Last${user.id}` : user.lastName,
      user_group: user.group === undefined ? 'UG' : user.group,
      account_type: user.accountType ?? 'EXTERNAL',
      status: user.status ?? 'ACTIVE',
    });
    for (const [idType, value] of Object.entries(user.ids ?? {})) {
      await knex('user_identifiers').insert({ user_id: user.id, id_type: idType, value });
    }
    for (const block of user.blocks ?? []) {
      await knex('user_blocks').insert({
        id: block.id ?? nextRowId(knex),
        user_id: user.id,
        block_type: block.type ?? 'CASH',
        description: block.description === undefined ? 'A block' : block.description,
        note: block.note ?? null,
        status: block.status ?? 'ACTIVE',
        created_at: timestampFor(knex, block.created ?? '2026-01-01T00:00:00Z'),
        expires_at: timestampFor(knex, block.expires ?? null),
      });
    }
    for (const fine of user.fines ?? []) {
      await knex('fines_fees').insert({
        id: fine.id ?? nextRowId(knex),
        user_id: user.id,
        fee_type: 'OVERDUE',
        status: fine.status ?? 'ACTIVE',
        original_amount_minor: fine.balance,
        balance_minor: fine.balance,
        currency: fine.currency ?? 'USD',
        created_at: timestampFor(knex, fine.created ?? '2026-01-01T00:00:00Z'),
      });
    }
  }
}

export interface ProfileSpec {
  id?: string;
  currency?: string;
  rules?: { rule: string; with?: Record<string, unknown> }[];
  delivery?: Record<string, unknown>;
  database?: string;
  output?: Record<string, unknown>;
}

/** A validated profile from a terse spec, through the real YAML parser and schema. */
export function makeProfile(spec: ProfileSpec, options: { dir?: string; registry?: Registry } = {}): Profile {
  const document = {
    id: spec.id ?? 'test',
    currency: spec.currency ?? 'USD',
    ...(spec.database ? { database: spec.database } : {}),
    rules: spec.rules ?? [],
    ...(spec.output ? { output: spec.output } : {}),
    delivery: spec.delivery ?? { transport: 'local', directory: '.' },
  };
  return parseProfile(path.join(options.dir ?? os.tmpdir(), `${document.id}.yaml`), stringify(document), options.registry ?? builtinRegistry);
}

/** Runs the composed selection of `profile` on `knex` (SQLite) and returns the users in order. */
export async function select(knex: Knex, profile: Profile, now: Date): Promise<SelectedUser[]> {
  const dialect = dialectFor('sqlite', knex);
  const query = composeSelection({ knex, dialect, relations: nativeRelations, rules: profile.rules, now, currency: profile.currency });
  const users: SelectedUser[] = [];
  for await (const user of groupUsers(streamRows(knex, dialect, query))) users.push(user);
  return users;
}
