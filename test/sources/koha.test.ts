import path from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { parseDatabaseUrl } from '../../daemon/database';
import { dialectFor } from '../../daemon/dialect';
import { SbeError } from '../../daemon/errors';
import { packageRoot } from '../../daemon/paths';
import { groupUsers, streamRows } from '../../daemon/rowSource';
import { composeSelection } from '../../daemon/selection';
import koha, { kohaGrants } from '../../daemon/sources/koha';
import { makeProfile } from '../helpers/sourceDb';
import { ExportHarness, NOW, elements, fixtureStatements, summaryOf, userElements, userXml, withDatabase, type ExpectedUser } from './exportHarness';

/** Suffixed with the pid so that parallel runs do not collide. */
const DATABASE = `sbe_koha_test_${process.pid}`;
const EMPTY_DATABASE = `sbe_koha_test_empty_${process.pid}`;
const READER = `sbe_koha_reader_${process.pid}`;
const SCHEMA = path.join(packageRoot, 'test', 'fixtures', 'koha', 'schema.sql');

/** A Knex on `url` whose session time zone is `zone` (the adapter must not depend on it). */
function connect(url: string, zone = '+00:00'): Knex {
  const target = parseDatabaseUrl(url);
  return knexFactory({
    ...target.knexConfig,
    pool: {
      min: 0,
      max: 1,
      afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        conn.query(`SET time_zone = '${zone}'`, (err) => done(err, conn));
      },
    },
  });
}

/**
 * The dataset: every Koha case the mapping has to get right. Run date 2026-12-04 (UTC),
 * at 02:00. Timestamps are written in UTC (the fixture session's time zone).
 */
async function loadDataset(db: Knex): Promise<void> {
  await db('categories').insert([
    { categorycode: 'ST', description: 'Student', category_type: 'A' },
    { categorycode: 'GRAD', description: 'Graduate', category_type: 'A' },
    { categorycode: 'STAFF', description: 'Library staff', category_type: 'S' },
  ]);
  await db('restriction_types').insert([
    { code: 'MANUAL', display_text: 'Manual', is_system: 0, is_default: 1 },
    { code: 'OVERDUES', display_text: 'Overdues', is_system: 1, is_default: 0 },
    { code: 'SUSPENSION', display_text: 'Suspension', is_system: 1, is_default: 0 },
    { code: 'DISCHARGE', display_text: 'Discharge', is_system: 1, is_default: 0 },
  ]);
  await db('borrower_attribute_types').insert([
    { code: 'STUDENT_ID', description: 'Student number', unique_id: 1 },
    { code: 'ALT_ID', description: 'Other ids', repeatable: 1 },
  ]);
  const borrower = (borrowernumber: number, cardnumber: string | null, userid: string | null, firstname: string, surname: string, categorycode: string) =>
    ({ borrowernumber, cardnumber, userid, firstname, surname, categorycode, branchcode: 'MAIN' });
  await db('borrowers').insert([
    borrower(1, 'C001', 'alice', 'Alice', 'Adams', 'ST'),
    borrower(2, 'C002', 'bob', 'Bob', 'Brown & Sons', 'ST'),
    borrower(3, 'C003', 'carol', 'Carol', 'Clark', 'GRAD'),
    borrower(4, 'C004', 'dave', 'Dave', 'Dunn', 'ST'),
    borrower(5, 'C005', 'erin', 'Erin', 'Evans', 'STAFF'),
    borrower(6, 'C006', 'frank', 'Frank', 'Fox', 'ST'),
    borrower(7, null, 'gina', 'Gina', 'Gray', 'ST'),
    borrower(8, 'C008', 'hank', 'Hank', 'Hill', 'ST'),
    borrower(9, 'C009', 'ivy', 'Ivy', 'Irwin', 'GRAD'),
  ]);
  await db('borrower_attributes').insert([
    { id: 1, borrowernumber: 1, code: 'STUDENT_ID', attribute: 'S1001' },
    { id: 2, borrowernumber: 2, code: 'STUDENT_ID', attribute: 'S1002' },
    { id: 3, borrowernumber: 3, code: 'STUDENT_ID', attribute: 'S1003' },
    { id: 4, borrowernumber: 6, code: 'STUDENT_ID', attribute: 'S1006' },
    { id: 5, borrowernumber: 7, code: 'STUDENT_ID', attribute: 'S1007' },
    { id: 6, borrowernumber: 8, code: 'STUDENT_ID', attribute: 'S1008' },
    { id: 7, borrowernumber: 9, code: 'STUDENT_ID', attribute: 'S1009' },
    // Repeatable: the first value entered (lowest id) is the identifier.
    { id: 8, borrowernumber: 9, code: 'ALT_ID', attribute: 'A2' },
    { id: 9, borrowernumber: 9, code: 'ALT_ID', attribute: 'A1' },
    { id: 10, borrowernumber: 5, code: 'ALT_ID', attribute: '' },
  ]);
  await db('borrower_debarments').insert([
    // Expiring today: Koha's `expiration > CURRENT_DATE()` no longer holds.
    { borrower_debarment_id: 1, borrowernumber: 1, type: 'MANUAL', comment: 'Today', expiration: '2026-12-04', created: '2026-11-01 09:00:00' },
    { borrower_debarment_id: 2, borrowernumber: 1, type: 'OVERDUES', comment: 'Overdue items', expiration: '2026-12-05', created: '2026-11-02 10:15:30' },
    // Indefinite.
    { borrower_debarment_id: 3, borrowernumber: 2, type: 'SUSPENSION', comment: 'Suspended <until review>', expiration: null, created: '2026-10-01 12:00:00' },
    { borrower_debarment_id: 4, borrowernumber: 4, type: 'MANUAL', comment: null, expiration: null, created: '2026-09-30 23:59:59' },
    { borrower_debarment_id: 5, borrowernumber: 5, type: 'DISCHARGE', comment: 'Discharged', expiration: null, created: '2026-08-01 00:00:00' },
    // Expired.
    { borrower_debarment_id: 6, borrowernumber: 8, type: 'MANUAL', comment: 'Old', expiration: '2026-12-01', created: '2026-06-01 00:00:00' },
    { borrower_debarment_id: 7, borrowernumber: 9, type: 'MANUAL', comment: 'Second', expiration: '2027-01-31', created: '2026-11-15 08:30:00' },
    { borrower_debarment_id: 8, borrowernumber: 9, type: 'OVERDUES', comment: 'First', expiration: null, created: '2026-11-15 08:29:59' },
  ]);
  const line = (accountlines_id: number, borrowernumber: number | null, amountoutstanding: string, date: string, amount = amountoutstanding) =>
    ({ accountlines_id, borrowernumber, amount, amountoutstanding, date, interface: 'intranet', debit_type_code: Number(amount) >= 0 ? 'OVERDUE' : null, credit_type_code: Number(amount) < 0 ? 'PAYMENT' : null });
  await db('accountlines').insert([
    line(1, 2, '12.500000', '2026-10-01 00:00:00'),
    // An unapplied credit: Koha stores credits as negative amounts.
    line(2, 2, '-3.000000', '2026-11-30 00:00:00'),
    // Fully paid: amountoutstanding 0, not read.
    line(3, 3, '0.000000', '2026-09-01 00:00:00', '10.000000'),
    line(4, 3, '4.000000', '2026-11-20 00:00:00'),
    line(5, 3, '2.000000', '2026-09-01 00:00:00'),
    line(6, 6, '-5.000000', '2026-06-01 00:00:00'),
    // More decimals than USD has: rounded half away from zero, per line.
    line(7, 7, '0.005000', '2026-12-01 00:00:00'),
    line(8, 7, '7.000000', '2026-12-01 00:00:00'),
    line(9, 8, '0.000000', '2026-06-01 00:00:00', '3.000000'),
    // A line of a deleted patron (borrowernumber set NULL by the foreign key).
    line(10, null, '99.000000', '2026-06-01 00:00:00'),
  ]);
}

describe('source koha (MariaDB, MYSQL_URL)', function () {
  this.timeout(120_000);
  const base = process.env.MYSQL_URL;
  let admin: Knex;
  let db: Knex;
  let url: string;
  let harness: ExportHarness;

  before(async function () {
    if (!base) {
      console.log('    (skipped: set MYSQL_URL, e.g. mysql://root@127.0.0.1:3306/test, to run the Koha source tests)');
      this.skip();
    }
    admin = knexFactory(parseDatabaseUrl(base).knexConfig);
    await admin.raw(`drop database if exists ${DATABASE}`);
    await admin.raw(`create database ${DATABASE} character set utf8mb4 collate utf8mb4_unicode_ci`);
    url = withDatabase(base, DATABASE);
    db = connect(url);
    for (const statement of fixtureStatements(SCHEMA)) await db.raw(statement);
    await loadDataset(db);
    harness = new ExportHarness('koha', url);
  });

  after(async () => {
    harness?.close();
    await db?.destroy();
    if (admin) {
      await admin.raw(`drop database if exists ${DATABASE}`);
      await admin.raw(`drop database if exists ${EMPTY_DATABASE}`);
      await admin.destroy();
    }
  });

  const alice: ExpectedUser = {
    userId: 'C001', primaryId: 'C001', firstName: 'Alice', lastName: 'Adams', userGroup: 'ST', accountType: 'EXTERNAL', activeBalance: '0.00',
    blocks: [{ blockType: 'OVERDUES', description: 'Overdue items', createdDate: '2026-11-02T10:15:30Z', expiryDate: '2026-12-05T00:00:00Z' }],
  };
  const bob: ExpectedUser = {
    userId: 'C002', primaryId: 'C002', firstName: 'Bob', lastName: 'Brown & Sons', userGroup: 'ST', accountType: 'EXTERNAL', activeBalance: '9.50',
    blocks: [{ blockType: 'SUSPENSION', description: 'Suspended <until review>', createdDate: '2026-10-01T12:00:00Z' }],
  };
  const carol: ExpectedUser = { userId: 'C003', primaryId: 'C003', firstName: 'Carol', lastName: 'Clark', userGroup: 'GRAD', accountType: 'EXTERNAL', activeBalance: '6.00', blocks: [] };
  const dave: ExpectedUser = {
    userId: 'C004', primaryId: 'C004', firstName: 'Dave', lastName: 'Dunn', userGroup: 'ST', accountType: 'EXTERNAL', activeBalance: '0.00',
    blocks: [{ blockType: 'MANUAL', createdDate: '2026-09-30T23:59:59Z' }],
  };
  const erin: ExpectedUser = {
    userId: 'C005', primaryId: 'C005', firstName: 'Erin', lastName: 'Evans', userGroup: 'STAFF', accountType: 'INTERNAL', activeBalance: '0.00',
    blocks: [{ blockType: 'DISCHARGE', description: 'Discharged', createdDate: '2026-08-01T00:00:00Z' }],
  };
  const ivy: ExpectedUser = {
    userId: 'C009', primaryId: 'C009', firstName: 'Ivy', lastName: 'Irwin', userGroup: 'GRAD', accountType: 'EXTERNAL', activeBalance: '0.00',
    blocks: [
      { blockType: 'OVERDUES', description: 'First', createdDate: '2026-11-15T08:29:59Z' },
      { blockType: 'MANUAL', description: 'Second', createdDate: '2026-11-15T08:30:00Z', expiryDate: '2027-01-31T00:00:00Z' },
    ],
  };
  // No cardnumber: the primary id falls back to userid.
  const gina: ExpectedUser = { userId: 'gina', primaryId: 'gina', firstName: 'Gina', lastName: 'Gray', userGroup: 'ST', accountType: 'EXTERNAL', activeBalance: '7.01', blocks: [] };

  it('exports the Koha dataset exactly (restrictions, credits, paid lines, staff, rounding)', async () => {
    const { xml } = await harness.run({ rules: [] });
    expect(userElements(xml)).to.deep.equal([alice, bob, carol, dave, erin, ivy, gina].map(userXml));
    expect(summaryOf(xml)).to.deep.equal({ activeBalanceTotal: '22.51', blocks: '6', skippedMissingMatchId: '0', users: '7' });
    expect(xml).to.include('matchIdType="primary"');
  });

  it('matches on an attribute (STUDENT_ID), skipping patrons without one', async () => {
    const { xml, result } = await harness.run({ rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID' } }] });
    expect(userElements(xml)).to.deep.equal([
      { ...alice, userId: 'S1001' }, { ...bob, userId: 'S1002' }, { ...carol, userId: 'S1003' }, { ...gina, userId: 'S1007' }, { ...ivy, userId: 'S1009' },
    ].map(userXml));
    expect(summaryOf(xml)).to.include({ users: '5', skippedMissingMatchId: '2' });
    expect(result.stderr).to.match(/2 user\(s\) skipped: no STUDENT_ID identifier/);
  });

  const matchIdCases: { idType: string; missing?: string; userIds: string[]; skipped: string }[] = [
    { idType: 'primary', userIds: ['C001', 'C002', 'C003', 'C004', 'C005', 'C009', 'gina'], skipped: '0' },
    { idType: 'cardnumber', userIds: ['C001', 'C002', 'C003', 'C004', 'C005', 'C009'], skipped: '1' },
    { idType: 'cardnumber', missing: 'primary', userIds: ['C001', 'C002', 'C003', 'C004', 'C005', 'C009', 'gina'], skipped: '0' },
    { idType: 'userid', userIds: ['alice', 'bob', 'carol', 'dave', 'erin', 'gina', 'ivy'], skipped: '0' },
    { idType: 'borrowernumber', userIds: ['1', '2', '3', '4', '5', '7', '9'], skipped: '0' },
    // Repeatable attribute: first value; an empty value is no identifier.
    { idType: 'ALT_ID', userIds: ['A2'], skipped: '6' },
  ];
  for (const { idType, missing, userIds, skipped } of matchIdCases) {
    it(`match-id ${idType}${missing ? ` (missing: ${missing})` : ''}`, async () => {
      const { xml } = await harness.run({ rules: [{ rule: 'match-id', with: { idType, ...(missing ? { missing } : {}) } }] });
      expect(elements(xml, 'userId')).to.deep.equal(userIds);
      expect(summaryOf(xml).skippedMissingMatchId).to.equal(skipped);
    });
  }

  const ruleCases: { name: string; rules: { rule: string; with?: Record<string, unknown> }[]; userIds: string[]; blocks?: string }[] = [
    { name: 'user-groups include', rules: [{ rule: 'user-groups', with: { include: ['GRAD'] } }], userIds: ['C003', 'C009'] },
    { name: 'user-groups exclude', rules: [{ rule: 'user-groups', with: { exclude: ['ST'] } }], userIds: ['C003', 'C005', 'C009'] },
    // Only SUSPENSION blocks count; balances still qualify on their own.
    { name: 'block-types include', rules: [{ rule: 'block-types', with: { include: ['SUSPENSION'] } }], userIds: ['C002', 'C003', 'gina'], blocks: '1' },
    { name: 'block-types exclude', rules: [{ rule: 'block-types', with: { exclude: ['MANUAL', 'OVERDUES'] } }], userIds: ['C002', 'C003', 'C005', 'gina'], blocks: '2' },
    // 30 days before the run: bob's 12.50 and carol's 2.00 are old enough, gina's lines are not.
    { name: 'fine-age 30', rules: [{ rule: 'fine-age', with: { days: 30 } }], userIds: ['C001', 'C002', 'C003', 'C004', 'C005', 'C009'] },
    { name: 'fine-age 30 + threshold 5.00', rules: [{ rule: 'fine-age', with: { days: 30 } }, { rule: 'threshold', with: { amount: '5.00' } }], userIds: ['C001', 'C002', 'C004', 'C005', 'C009'] },
    // carol's balance equals the threshold (not exported); gina's 7.01 is above it.
    { name: 'threshold 6.00', rules: [{ rule: 'threshold', with: { amount: '6.00' } }], userIds: ['C001', 'C002', 'C004', 'C005', 'C009', 'gina'] },
    { name: 'exclude-internal', rules: [{ rule: 'exclude-internal' }], userIds: ['C001', 'C002', 'C003', 'C004', 'C009', 'gina'] },
  ];
  for (const { name, rules, userIds, blocks } of ruleCases) {
    it(`rule ${name}`, async () => {
      const { xml } = await harness.run({ rules });
      expect(elements(xml, 'userId')).to.deep.equal(userIds);
      if (blocks !== undefined) expect(summaryOf(xml).blocks).to.equal(blocks);
    });
  }

  it('reads TIMESTAMP columns as UTC whatever the session time zone', async () => {
    const zoned = connect(url, '+05:00');
    try {
      const profile = makeProfile({ rules: [{ rule: 'match-id', with: { idType: 'userid' } }] });
      const dialect = dialectFor('mysql', zoned);
      const query = composeSelection({ knex: zoned, dialect, relations: koha, rules: profile.rules, now: new Date(NOW), currency: 'USD' });
      const created: string[] = [];
      for await (const user of groupUsers(streamRows(zoned, dialect, query))) {
        for (const block of user.blocks) created.push(`${user.userId} ${new Date(block.createdAt).toISOString()} ${block.expiresAt === null ? '-' : new Date(block.expiresAt).toISOString()}`);
      }
      expect(created).to.deep.equal([
        'alice 2026-11-02T10:15:30.000Z 2026-12-05T00:00:00.000Z',
        'bob 2026-10-01T12:00:00.000Z -',
        'dave 2026-09-30T23:59:59.000Z -',
        'erin 2026-08-01T00:00:00.000Z -',
        'ivy 2026-11-15T08:29:59.000Z -',
        'ivy 2026-11-15T08:30:00.000Z 2027-01-31T00:00:00.000Z',
      ]);
    } finally {
      await zoned.destroy();
    }
  });

  it('exports amounts in the minor units of the profile currency (JPY 0, KWD 3 digits)', async () => {
    const jpy = await harness.run({ currency: 'JPY', rules: [{ rule: 'match-id', with: { idType: 'userid' } }] });
    expect(elements(jpy.xml, 'activeBalance')).to.deep.equal(['0', '10', '6', '0', '0', '7', '0']);
    const kwd = await harness.run({ currency: 'KWD', rules: [{ rule: 'match-id', with: { idType: 'userid' } }] });
    expect(elements(kwd.xml, 'activeBalance')).to.deep.equal(['0.000', '9.500', '6.000', '0.000', '0.000', '7.005', '0.000']);
  });

  it('check() names missing tables and columns and the grants to ask for (exit 3)', async () => {
    await admin.raw(`drop database if exists ${EMPTY_DATABASE}`);
    await admin.raw(`create database ${EMPTY_DATABASE} character set utf8mb4 collate utf8mb4_unicode_ci`);
    const emptyUrl = withDatabase(base!, EMPTY_DATABASE);
    const empty = connect(emptyUrl);
    try {
      await empty.raw('create table borrowers (borrowernumber int primary key, cardnumber varchar(32))');
      const target = parseDatabaseUrl(emptyUrl);
      const error = await koha.check(empty, dialectFor('mysql', empty), target).then(() => undefined, (caught: unknown) => caught);
      expect(error).to.be.instanceOf(SbeError);
      expect((error as SbeError).code).to.equal('SOURCE_QUERY');
      const message = (error as SbeError).message;
      expect(message).to.include('borrowers.userid, borrowers.firstname').and.include('accountlines.amountoutstanding').and.include('restriction_types.code');
      expect(message).not.to.include('borrowers.cardnumber');
      const user = parseDatabaseUrl(base!).knexConfig.connection as { user: string };
      expect(message).to.include(`GRANT SELECT (\`borrowernumber\`, \`cardnumber\`, \`userid\`, \`firstname\`, \`surname\`, \`categorycode\`) ON \`${EMPTY_DATABASE}\`.\`borrowers\` TO '${user.user}'@'<this host>';`);
      expect(message).to.include(`ON \`${EMPTY_DATABASE}\`.\`accountlines\` TO`);
      const emptyHarness = new ExportHarness('koha', emptyUrl);
      try {
        const result = await emptyHarness.fail({ rules: [] });
        expect(result.code).to.equal(3);
        expect(result.stderr).to.include('is not a readable Koha database');
      } finally {
        emptyHarness.close();
      }
    } finally {
      await empty.destroy();
    }
  });

  it('works with exactly the column grants it documents, and names a missing one', async () => {
    const readerUrl = new URL(url);
    readerUrl.username = READER;
    readerUrl.password = '';
    const target = parseDatabaseUrl(readerUrl.toString());
    await admin.raw(`drop user if exists '${READER}'@'%'`);
    await admin.raw(`create user '${READER}'@'%'`);
    try {
      const grants = kohaGrants(target);
      expect(grants).to.have.length(6);
      expect(grants).to.include(`GRANT SELECT (\`borrower_debarment_id\`, \`borrowernumber\`, \`type\`, \`comment\`, \`created\`, \`expiration\`) ON \`${DATABASE}\`.\`borrower_debarments\` TO '${READER}'@'<this host>';`);
      for (const grant of grants) {
        // borrowers.userid is held back at first.
        await admin.raw(grant.replace("'<this host>'", "'%'").replace(', `userid`', ''));
      }
      const reader = connect(readerUrl.toString());
      try {
        const error = await koha.check(reader, dialectFor('mysql', reader), target).then(() => undefined, (caught: unknown) => caught);
        expect((error as SbeError).message).to.match(/missing or not readable: borrowers\.userid\.\n/);
        expect((error as SbeError).message).to.include(`ON \`${DATABASE}\`.\`borrowers\` TO '${READER}'@'<this host>';`);
        await admin.raw(`grant select (userid) on ${DATABASE}.borrowers to '${READER}'@'%'`);
      } finally {
        await reader.destroy();
      }
      const readerHarness = new ExportHarness('koha', readerUrl.toString());
      try {
        const { xml } = await readerHarness.run({ rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID' } }] });
        expect(elements(xml, 'userId')).to.deep.equal(['S1001', 'S1002', 'S1003', 'S1007', 'S1009']);
      } finally {
        readerHarness.close();
      }
    } finally {
      await admin.raw(`drop user if exists '${READER}'@'%'`);
    }
  });

  it('check() reports outstanding lines without a date (SOURCE_DATA, exit 3)', async () => {
    await db('accountlines').insert({ accountlines_id: 99, borrowernumber: 3, amount: '1.00', amountoutstanding: '1.00', date: null, interface: 'intranet' });
    try {
      const result = await harness.fail({ rules: [] });
      expect(result.code).to.equal(3);
      expect(result.stderr).to.include('accountlines_id 99');
    } finally {
      await db('accountlines').where('accountlines_id', 99).delete();
    }
  });
});
