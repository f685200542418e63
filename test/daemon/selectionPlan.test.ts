import { expect } from 'chai';
import type { Knex } from 'knex';
import { dialectFor } from '../../daemon/dialect';
import { seedDemo } from '../../daemon/seed';
import { composeSelection } from '../../daemon/selection';
import nativeRelations from '../../daemon/sources/native';
import { createSqliteSource, makeProfile, type TestSource } from '../helpers/sourceDb';

/**
 * SQLite plans without statistics (no ANALYZE on a library's database). Two plans made an
 * export quadratic: a flattened counted-blocks subquery, and users walked in primary_id
 * order with the balances scanned per user. Every join of the selection must be an indexed
 * SEARCH, never a SCAN per user, whatever the rules.
 */
describe('selection query plan on SQLite', () => {
  let source: TestSource;
  before(async () => {
    source = await createSqliteSource();
    await seedDemo(source.knex, { users: 2000, seed: 5, currency: 'USD', now: new Date('2026-11-20T00:00:00Z'), dialect: 'sqlite' });
  });
  after(async () => source.close());

  async function plan(knex: Knex, rules: { rule: string; with?: Record<string, unknown> }[]): Promise<string[]> {
    const profile = makeProfile({ rules });
    const query = composeSelection({ knex, dialect: dialectFor('sqlite', knex), relations: nativeRelations, rules: profile.rules, now: new Date('2026-12-04T02:00:00Z'), currency: 'USD' });
    const { sql, bindings } = query.toSQL().toNative();
    const rows = (await knex.raw(`explain query plan ${sql}`, bindings as Knex.RawBinding[])) as { parent: number; detail: string }[];
    return rows.filter((row) => row.parent === 0).map((row) => row.detail);
  }

  const variants: Record<string, { rule: string; with?: Record<string, unknown> }[]> = {
    'no rules (primary id)': [],
    'match-id STUDENT_ID': [{ rule: 'match-id', with: { idType: 'STUDENT_ID' } }],
    'match-id with primary fallback, fine-age 0': [{ rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'primary' } }, { rule: 'fine-age', with: { days: 0 } }],
    'every rule': [
      { rule: 'match-id', with: { idType: 'BARCODE' } },
      { rule: 'user-groups', with: { include: ['UG', 'GRAD'] } },
      { rule: 'block-types', with: { exclude: ['NOTE'] } },
      { rule: 'fine-age', with: { days: 30 } },
      { rule: 'threshold', with: { amount: '5.00' } },
      { rule: 'exclude-internal' },
    ],
  };

  for (const [name, rules] of Object.entries(variants)) {
    it(`${name}: users are read once, every join is an indexed search`, async () => {
      const details = await plan(source.knex, rules);
      // Users are read once (a scan, or a search when a rule filters on an indexed column).
      expect(details.filter((detail) => /^(SCAN|SEARCH) u\b/.test(detail)), details.join('\n')).to.have.length(1);
      expect(details.filter((detail) => /^SCAN /.test(detail) && !/^SCAN u\b/.test(detail)), details.join('\n')).to.deep.equal([]);
      for (const alias of ['ab', 'q', 'cb']) {
        expect(details.some((detail) => new RegExp(`^SEARCH ${alias} USING .*INDEX \\(user_id=\\?\\)`).test(detail)), `${alias} in:\n${details.join('\n')}`).to.equal(true);
      }
    });
  }
});
