import type { Knex } from 'knex';
import type { DialectName } from './database';
import { SbeError } from './errors';

/** Reference codes: every demo and example profile uses these. */
export const USER_GROUPS: readonly [code: string, description: string][] = [
  ['UG', 'Undergraduate'],
  ['GRAD', 'Graduate student'],
  ['STAFF', 'Library and university staff'],
  ['FAC', 'Faculty'],
  ['ALUMNI', 'Alumni'],
];

export const BLOCK_TYPES: readonly [code: string, description: string][] = [
  ['CASH', 'Unpaid fines and fees'],
  ['LOAN', 'Overdue loans'],
  ['LOST', 'Lost items not replaced'],
  ['MANUAL', 'Placed by staff'],
  ['NOTE', 'Informational'],
];

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same demo data. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST_NAMES = ['Jane', 'John', 'María José', 'Zoë', 'Łukasz', 'Søren', 'Amélie', 'Chloé', 'Mohammed', 'Aarav', '美咲', '陈', 'Олег', 'Nguyễn', 'Ana "Annie"', "D'Arcy", 'Tom & Jerry', 'Renée', 'Björk', 'Kwame', 'Siobhán', 'Jürgen', 'Émile', 'Priya'];
const LAST_NAMES = ['Doe', 'Smith', "O'Brien", 'Müller', 'García', 'Nakamura', '王', 'Kowalski', 'Ødegård', 'Dubois', 'Smith & Wesson', 'Lee <Jr>', 'Fernández-López', 'Иванов', 'Núñez', 'Abara', 'Van der Berg', 'MacLeod', 'Çelik', 'Østergaard'];
const NOTES = ['Call before lifting', 'Patron disputes the charge', 'Paid partially at desk <see receipt>', 'Item "Gray\'s Anatomy" lost', 'Fees > $50 & overdue', 'Vérifié par la bibliothèque', '已通知读者', null, null, null];
const BLOCK_DESCRIPTIONS: Record<string, string[]> = {
  CASH: ['Unpaid bill', 'Fines over limit', 'Replacement cost & processing fee'],
  LOAN: ['Overdue recall', 'Long overdue items'],
  LOST: ['Lost book not replaced', 'Lost laptop charger'],
  MANUAL: ['Conduct', 'Hold placed by circulation desk'],
  NOTE: ['Patron asked to update address'],
};
const FEE_TYPES = ['OVERDUE', 'LOST_ITEM', 'PROCESSING', 'DAMAGE', 'RECALL', 'CREDIT'];

export interface DemoOptions {
  users: number;
  /** The time the data is generated relative to (timestamps spread over the two years before). */
  now: Date;
  seed: number;
  currency: string;
  dialect: DialectName;
}

export interface SeedCounts {
  users: number;
  identifiers: number;
  blocks: number;
  fines: number;
}

const DAY = 86_400_000;

/** SQLite keeps text: mix the two forms the SPEC requires us to read. Other dialects take Dates. */
function timestampWriter(dialect: DialectName): (date: Date, pick: number) => string | Date {
  if (dialect !== 'sqlite') return (date) => date;
  return (date, pick) => {
    const iso = date.toISOString();
    if (pick < 0.4) return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    if (pick < 0.7) return `${iso.slice(0, 19)}Z`;
    return iso;
  };
}

/** Multi-row inserts of at most 500 rows (well under every dialect's bind-parameter limit). */
async function insertChunks(trx: Knex.Transaction, table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) await trx(table).insert(rows.slice(i, i + 500));
}

/** Inserts the reference codes (user groups, block types) that are not there yet. */
export async function seedReferenceData(db: Knex): Promise<void> {
  for (const [table, rows] of [['user_groups', USER_GROUPS], ['block_types', BLOCK_TYPES]] as const) {
    const existing = new Set((await db(table).select('code')).map((row: { code: string }) => row.code));
    const missing = rows.filter(([code]) => !existing.has(code)).map(([code, description]) => ({ code, description }));
    if (missing.length > 0) await db(table).insert(missing);
  }
}

/**
 * Realistic synthetic data: several user groups, identifiers of several types (some users
 * lack one), blocks of several types, states and expiries, fines and credits spread over two
 * years, and names and notes with characters XML must escape. Written in batches inside one
 * transaction; nothing is held for all users.
 */
export async function seedDemo(db: Knex, options: DemoOptions): Promise<SeedCounts> {
  const [{ count }] = (await db('users').count({ count: '*' })) as [{ count: number | string }];
  if (Number(count) > 0) {
    throw new SbeError('USAGE', `the database already holds ${count} users; seed demo data into a new, empty database`);
  }
  await seedReferenceData(db);
  const random = prng(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const ts = timestampWriter(options.dialect);
  const nowMs = options.now.getTime();
  const counts: SeedCounts = { users: 0, identifiers: 0, blocks: 0, fines: 0 };
  const batchUsers = 500;
  let blockId = 0;
  let fineId = 0;

  await db.transaction(async (trx) => {
    for (let start = 1; start <= options.users; start += batchUsers) {
      const users: Record<string, unknown>[] = [];
      const identifiers: Record<string, unknown>[] = [];
      const blocks: Record<string, unknown>[] = [];
      const fines: Record<string, unknown>[] = [];
      for (let id = start; id < Math.min(start + batchUsers, options.users + 1); id++) {
        const roll = random();
        const group = roll < 0.5 ? 'UG' : roll < 0.7 ? 'GRAD' : roll < 0.8 ? 'STAFF' : roll < 0.9 ? 'FAC' : roll < 0.95 ? 'ALUMNI' : null;
        const internal = (group === 'STAFF' || group === 'FAC') && random() < 0.8;
        const created = new Date(nowMs - Math.floor(random() * 6 * 365 * DAY));
        users.push({
          id,
          primary_id: `p${String(id).padStart(7, '0')}`,
          first_name: random() < 0.03 ? null : pick(FIRST_NAMES),
          last_name: random() < 0.01 ? null : pick(LAST_NAMES),
          user_group: group,
          account_type: internal ? 'INTERNAL' : 'EXTERNAL',
          status: random() < 0.95 ? 'ACTIVE' : 'INACTIVE',
          created_at: ts(created, random()),
          updated_at: ts(created, 0),
        });
        // Students mostly have a student id; some are missing it (match-id skip/primary).
        if ((group === 'UG' || group === 'GRAD') && random() < 0.92) identifiers.push({ user_id: id, id_type: 'STUDENT_ID', value: `S${String(1_000_000 + id * 7).padStart(8, '0')}` });
        if (internal || group === 'FAC') identifiers.push({ user_id: id, id_type: 'EMPLOYEE_ID', value: `E${String(id).padStart(7, '0')}` });
        if (random() < 0.9) identifiers.push({ user_id: id, id_type: 'BARCODE', value: `2${String(id).padStart(13, '0')}` });

        if (random() < 0.15) {
          const n = 1 + Math.floor(random() * 3);
          for (let k = 0; k < n; k++) {
            const type = pick(['CASH', 'CASH', 'LOAN', 'LOAN', 'LOST', 'MANUAL', 'NOTE'] as const);
            const createdAt = new Date(nowMs - Math.floor(random() * 730 * DAY));
            const expiry = random();
            blocks.push({
              id: ++blockId,
              user_id: id,
              block_type: type,
              description: random() < 0.9 ? pick(BLOCK_DESCRIPTIONS[type]!) : null,
              note: pick(NOTES),
              status: random() < 0.8 ? 'ACTIVE' : 'INACTIVE',
              created_at: ts(createdAt, random()),
              expires_at: expiry < 0.5 ? null : ts(new Date(expiry < 0.7 ? nowMs - Math.floor(random() * 200 * DAY) : nowMs + Math.floor(random() * 400 * DAY)), random()),
            });
          }
        }
        if (random() < 0.3) {
          const n = 1 + Math.floor(random() * 5);
          for (let k = 0; k < n; k++) {
            const credit = random() < 0.05;
            const original = (1 + Math.floor(random() * 200)) * 50;
            const status = random() < 0.7 ? 'ACTIVE' : 'CLOSED';
            const balance = credit ? -original : status === 'CLOSED' ? 0 : random() < 0.2 ? Math.floor(original / 2) : original;
            fines.push({
              id: ++fineId,
              user_id: id,
              fee_type: credit ? 'CREDIT' : pick(FEE_TYPES.slice(0, 5)),
              status,
              original_amount_minor: credit ? -original : original,
              balance_minor: balance,
              currency: options.currency,
              created_at: ts(new Date(nowMs - Math.floor(random() * 730 * DAY)), random()),
            });
          }
        }
      }
      await insertChunks(trx, 'users', users);
      await insertChunks(trx, 'user_identifiers', identifiers);
      await insertChunks(trx, 'user_blocks', blocks);
      await insertChunks(trx, 'fines_fees', fines);
      counts.users += users.length;
      counts.identifiers += identifiers.length;
      counts.blocks += blocks.length;
      counts.fines += fines.length;
    }
  });
  if (options.dialect === 'pg') {
    // Explicit ids leave the sequences behind; later inserts must not collide.
    for (const table of ['users', 'user_blocks', 'fines_fees']) {
      await db.raw(`select setval(pg_get_serial_sequence(?, 'id'), coalesce((select max(id) from ??), 1))`, [table, table]);
    }
  }
  return counts;
}
