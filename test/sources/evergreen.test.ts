import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { openDatabase, parseDatabaseUrl } from '../../daemon/database';
import { dialectFor } from '../../daemon/dialect';
import { SbeError } from '../../daemon/errors';
import { packageRoot } from '../../daemon/paths';
import evergreen, { evergreenGrants } from '../../daemon/sources/evergreen';
import { ExportHarness, elements, summaryOf, userElements, userXml, withDatabase, type ExpectedUser } from './exportHarness';

/** Suffixed with the pid so that parallel runs do not collide. */
const DATABASE = `sbe_evergreen_test_${process.pid}`;
const SCHEMA = path.join(packageRoot, 'test', 'fixtures', 'evergreen', 'schema.sql');
const READER = `sbe_evergreen_reader_${process.pid}`;

/**
 * The dataset: every Evergreen case the mapping has to get right. The run is at
 * 2026-12-04T02:00:00Z.
 */
async function loadDataset(db: Knex): Promise<void> {
  // The stock tree (950.data.seed-values.sql), plus local groups under Patrons and Staff.
  await db('permission.grp_tree').insert([
    { id: 1, name: 'Users', parent: null, usergroup: false, description: null },
    { id: 2, name: 'Patrons', parent: 1, usergroup: true, description: null },
    { id: 3, name: 'Staff', parent: 1, usergroup: false, description: null },
    { id: 5, name: 'Circulators', parent: 3, usergroup: true, description: null },
    { id: 10, name: 'Local Administrator', parent: 5, usergroup: true, description: 'Can do anything at the Branch level' },
    { id: 101, name: 'Undergraduate', parent: 2, usergroup: true, description: null },
    { id: 102, name: 'Graduate', parent: 2, usergroup: true, description: null },
  ]);
  // Stock penalties (950.data.seed-values.sql) and one local penalty with an empty block list.
  await db('config.standing_penalty').insert([
    { id: 1, name: 'PATRON_EXCEEDS_FINES', label: 'Patron exceeds fine threshold', block_list: 'CIRC|FULFILL|HOLD|CAPTURE|RENEW', staff_alert: true },
    { id: 20, name: 'ALERT_NOTE', label: 'Alerting Note, no blocks', block_list: null, staff_alert: true },
    { id: 21, name: 'SILENT_NOTE', label: 'Note, no blocks', block_list: null, staff_alert: false },
    { id: 22, name: 'STAFF_C', label: 'Alerting block on Circ', block_list: 'CIRC', staff_alert: true },
    { id: 30, name: 'PATRON_IN_COLLECTIONS', label: 'Patron has been referred to a collections agency', block_list: null, staff_alert: false },
    { id: 200, name: 'LOCAL_EMPTY', label: 'Local penalty with an empty block list', block_list: ' ', staff_alert: false },
  ]);
  const usr = (id: number, usrname: string, first: string, family: string, profile: number, extra: Record<string, unknown> = {}) =>
    ({ id, usrname, first_given_name: first, family_name: family, profile, ident_type: 1, home_ou: 1, ...extra });
  await db('actor.usr').insert([
    usr(1, 'alice', 'Alice', 'Adams', 101, { ident_value: 'S1001' }),
    usr(2, 'bob', 'Bob', 'Brown & Sons', 102, { ident_value: 'S1002', ident_value2: 'E002' }),
    // No card: the primary id is the username.
    usr(3, 'carol', 'Carol', 'Clark', 101, { ident_value: 'S1003' }),
    usr(4, 'dave', 'Dave', 'Dunn', 101, { ident_value: 'S1004', deleted: true }),
    usr(5, 'erin', 'Erin', 'Evans', 101, { ident_value: 'S1005', active: false }),
    // Two levels below Staff, and Staff itself: INTERNAL.
    usr(6, 'frank', 'Frank', 'Fox', 10, { ident_value: '  ', ident_value2: 'E77' }),
    usr(7, 'gina', 'Gina', 'Gray', 3, { ident_value: 'S1007' }),
    usr(8, 'hank', 'Hank', 'Hill', 2, { ident_value: 'S1008' }),
    usr(9, 'ivy', 'Ivy', 'Irwin', 102, { ident_value: 'S1009' }),
  ]);
  await db('actor.card').insert([
    { id: 11, usr: 1, barcode: 'B001' },
    { id: 12, usr: 2, barcode: 'B002' },
    { id: 13, usr: 2, barcode: 'B002-OLD', active: false },
    { id: 14, usr: 4, barcode: 'B004' },
    { id: 15, usr: 5, barcode: 'B005' },
    { id: 16, usr: 6, barcode: 'B006' },
    { id: 17, usr: 7, barcode: 'B007' },
    { id: 18, usr: 8, barcode: 'B008' },
    { id: 19, usr: 9, barcode: 'B009' },
  ]);
  for (const [usrId, cardId] of [[1, 11], [2, 12], [4, 14], [5, 15], [6, 16], [7, 17], [8, 18], [9, 19]] as const) {
    await db('actor.usr').where('id', usrId).update({ card: cardId });
  }
  await db('actor.usr_message').insert([
    { id: 501, usr: 2, title: 'Call the bursar', message: 'Call the bursar', sending_lib: 1, pub: false, create_date: '2026-10-01T12:00:00Z' },
    { id: 502, usr: 9, title: 'Gone', message: 'A deleted note', sending_lib: 1, deleted: true },
  ]);
  const penalty = (id: number, usr: number, standing_penalty: number, set_date: string, stop_date: string | null, usr_message: number | null = null) =>
    ({ id, org_unit: 1, usr, standing_penalty, set_date, stop_date, usr_message });
  await db('actor.usr_standing_penalty').insert([
    // Ends exactly at the run time: no longer counts; one second later: counts.
    penalty(1001, 1, 22, '2026-11-01T09:00:00Z', '2026-12-04T02:00:00Z'),
    penalty(1002, 1, 1, '2026-11-02T10:15:30Z', '2026-12-04T02:00:01Z'),
    // Informational (no block list): never a block.
    penalty(1003, 1, 20, '2026-11-03T00:00:00Z', null),
    penalty(1004, 2, 22, '2026-10-01T12:00:00Z', null, 501),
    penalty(1005, 4, 22, '2026-10-01T12:00:00Z', null),
    penalty(1006, 5, 22, '2026-10-01T12:00:00Z', null),
    penalty(1007, 6, 1, '2026-08-01T00:00:00Z', null),
    penalty(1008, 8, 21, '2026-08-01T00:00:00Z', null),
    penalty(1009, 8, 30, '2026-08-01T00:00:00Z', null),
    penalty(1010, 8, 200, '2026-08-01T00:00:00Z', null),
    // The second starts later but sorts first by set_date; the deleted note is not written.
    penalty(1011, 9, 22, '2026-11-15T08:30:00Z', '2027-01-31T00:00:00Z', 502),
    penalty(1012, 9, 1, '2026-11-15T08:29:59Z', null),
    // Archived (stopped in the past).
    penalty(1013, 3, 22, '2026-06-01T00:00:00Z', '2026-07-01T00:00:00Z'),
  ]);
  const xact = (id: number, usr: number, xact_start: string, balance_owed: string, xact_finish: string | null = null) =>
    ({ id, usr, xact_start, xact_finish, balance_owed, total_owed: balance_owed, total_paid: '0.00', xact_type: 'grocery' });
  await db('money.materialized_billable_xact_summary').insert([
    xact(2001, 2, '2026-10-01T00:00:00Z', '12.50'),
    // Overpaid: a credit.
    xact(2002, 2, '2026-11-30T00:00:00Z', '-3.00'),
    // Closed, and open but fully paid: not read.
    xact(2003, 2, '2026-06-01T00:00:00Z', '20.00', '2026-07-01T00:00:00Z'),
    xact(2004, 3, '2026-09-01T00:00:00Z', '0.00'),
    xact(2005, 3, '2026-11-20T00:00:00Z', '4.00'),
    xact(2006, 3, '2026-09-01T00:00:00Z', '2.00'),
    // More decimals than USD has (balance_owed is an unconstrained numeric).
    xact(2007, 7, '2026-12-01T00:00:00Z', '0.005'),
    xact(2008, 7, '2026-12-01T00:00:00Z', '7.00'),
    // A deleted user's and an inactive user's bills.
    xact(2009, 4, '2026-06-01T00:00:00Z', '50.00'),
    xact(2010, 5, '2026-06-01T00:00:00Z', '50.00'),
  ]);
}

describe('source evergreen (PostgreSQL, PG_URL)', function () {
  this.timeout(120_000);
  const base = process.env.PG_URL;
  let admin: Knex;
  let db: Knex;
  let url: string;
  let harness: ExportHarness;

  before(async function () {
    if (!base) {
      console.log('    (skipped: set PG_URL, e.g. postgres://postgres@127.0.0.1:5432/test, to run the Evergreen source tests)');
      this.skip();
    }
    admin = knexFactory(parseDatabaseUrl(base).knexConfig);
    await admin.raw(`drop database if exists "${DATABASE}" with (force)`);
    await admin.raw(`create database "${DATABASE}"`);
    url = withDatabase(base, DATABASE);
    db = openDatabase(parseDatabaseUrl(url), { create: false });
    await db.raw(fs.readFileSync(SCHEMA, 'utf8'));
    await loadDataset(db);
    harness = new ExportHarness('evergreen', url);
  });

  after(async () => {
    harness?.close();
    await db?.destroy();
    if (admin) {
      await admin.raw(`drop database if exists "${DATABASE}" with (force)`);
      await admin.raw(`drop role if exists "${READER}"`);
      await admin.destroy();
    }
  });

  const alice: ExpectedUser = {
    userId: 'B001', primaryId: 'B001', firstName: 'Alice', lastName: 'Adams', userGroup: 'Undergraduate', accountType: 'EXTERNAL', activeBalance: '0.00',
    blocks: [{ blockType: 'PATRON_EXCEEDS_FINES', description: 'Patron exceeds fine threshold', createdDate: '2026-11-02T10:15:30Z', expiryDate: '2026-12-04T02:00:01Z' }],
  };
  const bob: ExpectedUser = {
    userId: 'B002', primaryId: 'B002', firstName: 'Bob', lastName: 'Brown & Sons', userGroup: 'Graduate', accountType: 'EXTERNAL', activeBalance: '9.50',
    blocks: [{ blockType: 'STAFF_C', description: 'Alerting block on Circ', createdDate: '2026-10-01T12:00:00Z', note: 'Call the bursar' }],
  };
  const frank: ExpectedUser = {
    userId: 'B006', primaryId: 'B006', firstName: 'Frank', lastName: 'Fox', userGroup: 'Local Administrator', accountType: 'INTERNAL', activeBalance: '0.00',
    blocks: [{ blockType: 'PATRON_EXCEEDS_FINES', description: 'Patron exceeds fine threshold', createdDate: '2026-08-01T00:00:00Z' }],
  };
  const gina: ExpectedUser = { userId: 'B007', primaryId: 'B007', firstName: 'Gina', lastName: 'Gray', userGroup: 'Staff', accountType: 'INTERNAL', activeBalance: '7.01', blocks: [] };
  const ivy: ExpectedUser = {
    userId: 'B009', primaryId: 'B009', firstName: 'Ivy', lastName: 'Irwin', userGroup: 'Graduate', accountType: 'EXTERNAL', activeBalance: '0.00',
    blocks: [
      { blockType: 'PATRON_EXCEEDS_FINES', description: 'Patron exceeds fine threshold', createdDate: '2026-11-15T08:29:59Z' },
      { blockType: 'STAFF_C', description: 'Alerting block on Circ', createdDate: '2026-11-15T08:30:00Z', expiryDate: '2027-01-31T00:00:00Z' },
    ],
  };
  // No card: the primary id falls back to the username.
  const carol: ExpectedUser = { userId: 'carol', primaryId: 'carol', firstName: 'Carol', lastName: 'Clark', userGroup: 'Undergraduate', accountType: 'EXTERNAL', activeBalance: '6.00', blocks: [] };

  it('exports the Evergreen dataset exactly (penalties, notes, credits, staff tree, deleted/inactive users)', async () => {
    const { xml } = await harness.run({ rules: [] });
    expect(userElements(xml)).to.deep.equal([alice, bob, frank, gina, ivy, carol].map(userXml));
    expect(summaryOf(xml)).to.deep.equal({ activeBalanceTotal: '22.51', blocks: '5', skippedMissingMatchId: '0', users: '6' });
  });

  it('matches on ident_value, skipping users without one', async () => {
    const { xml } = await harness.run({ rules: [{ rule: 'match-id', with: { idType: 'ident_value' } }] });
    expect(userElements(xml)).to.deep.equal([
      { ...alice, userId: 'S1001' }, { ...bob, userId: 'S1002' }, { ...carol, userId: 'S1003' }, { ...gina, userId: 'S1007' }, { ...ivy, userId: 'S1009' },
    ].map(userXml));
    expect(summaryOf(xml)).to.include({ users: '5', skippedMissingMatchId: '1' });
  });

  const matchIdCases: { idType: string; missing?: string; userIds: string[]; skipped: string }[] = [
    { idType: 'primary', userIds: ['B001', 'B002', 'B006', 'B007', 'B009', 'carol'], skipped: '0' },
    { idType: 'barcode', userIds: ['B001', 'B002', 'B006', 'B007', 'B009'], skipped: '1' },
    { idType: 'barcode', missing: 'primary', userIds: ['B001', 'B002', 'B006', 'B007', 'B009', 'carol'], skipped: '0' },
    { idType: 'usrname', userIds: ['alice', 'bob', 'carol', 'frank', 'gina', 'ivy'], skipped: '0' },
    { idType: 'ident_value2', userIds: ['E002', 'E77'], skipped: '4' },
    { idType: 'id', userIds: ['1', '2', '3', '6', '7', '9'], skipped: '0' },
  ];
  for (const { idType, missing, userIds, skipped } of matchIdCases) {
    it(`match-id ${idType}${missing ? ` (missing: ${missing})` : ''}`, async () => {
      const { xml } = await harness.run({ rules: [{ rule: 'match-id', with: { idType, ...(missing ? { missing } : {}) } }] });
      expect(elements(xml, 'userId')).to.deep.equal(userIds);
      expect(summaryOf(xml).skippedMissingMatchId).to.equal(skipped);
    });
  }

  const ruleCases: { name: string; rules: { rule: string; with?: Record<string, unknown> }[]; userIds: string[]; blocks?: string }[] = [
    { name: 'user-groups include', rules: [{ rule: 'user-groups', with: { include: ['Graduate'] } }], userIds: ['B002', 'B009'] },
    { name: 'user-groups exclude', rules: [{ rule: 'user-groups', with: { exclude: ['Undergraduate', 'Staff'] } }], userIds: ['B002', 'B006', 'B009'] },
    { name: 'block-types include', rules: [{ rule: 'block-types', with: { include: ['STAFF_C'] } }], userIds: ['B002', 'B007', 'B009', 'carol'], blocks: '2' },
    { name: 'block-types exclude', rules: [{ rule: 'block-types', with: { exclude: ['STAFF_C'] } }], userIds: ['B001', 'B002', 'B006', 'B007', 'B009', 'carol'], blocks: '3' },
    // 30 days before the run: bob's 12.50 and carol's 2.00 are old enough, gina's bills are not.
    { name: 'fine-age 30', rules: [{ rule: 'fine-age', with: { days: 30 } }], userIds: ['B001', 'B002', 'B006', 'B009', 'carol'] },
    { name: 'fine-age 30 + threshold 5.00', rules: [{ rule: 'fine-age', with: { days: 30 } }, { rule: 'threshold', with: { amount: '5.00' } }], userIds: ['B001', 'B002', 'B006', 'B009'] },
    { name: 'threshold 6.00', rules: [{ rule: 'threshold', with: { amount: '6.00' } }], userIds: ['B001', 'B002', 'B006', 'B007', 'B009'] },
    { name: 'exclude-internal', rules: [{ rule: 'exclude-internal' }], userIds: ['B001', 'B002', 'B009', 'carol'] },
  ];
  for (const { name, rules, userIds, blocks } of ruleCases) {
    it(`rule ${name}`, async () => {
      const { xml } = await harness.run({ rules });
      expect(elements(xml, 'userId')).to.deep.equal(userIds);
      if (blocks !== undefined) expect(summaryOf(xml).blocks).to.equal(blocks);
    });
  }

  it('exports amounts in the minor units of the profile currency (JPY 0, KWD 3 digits)', async () => {
    const jpy = await harness.run({ currency: 'JPY', rules: [{ rule: 'match-id', with: { idType: 'usrname' } }] });
    expect(elements(jpy.xml, 'activeBalance')).to.deep.equal(['0', '10', '6', '0', '7', '0']);
    const kwd = await harness.run({ currency: 'KWD', rules: [{ rule: 'match-id', with: { idType: 'usrname' } }] });
    expect(elements(kwd.xml, 'activeBalance')).to.deep.equal(['0.000', '9.500', '6.000', '0.000', '7.005', '0.000']);
  });

  it('check() tells missing columns from columns the user may not read, with the grants (exit 3)', async () => {
    await admin.raw(`drop role if exists "${READER}"`);
    await admin.raw(`create role "${READER}" login`);
    await db.raw(`grant usage on schema actor, config, permission, money to "${READER}"`);
    const readerUrl = new URL(url);
    readerUrl.username = READER;
    const target = parseDatabaseUrl(readerUrl.toString());
    // Exactly the documented column grants, except for two tables.
    for (const grant of evergreenGrants(target).filter((statement) => !/ON (actor\.usr_message|money\.)/.test(statement))) await db.raw(grant);
    const reader = openDatabase(target, { create: false });
    try {
      const error = await evergreen.check(reader, dialectFor('pg', reader), target).then(() => undefined, (caught: unknown) => caught);
      expect(error).to.be.instanceOf(SbeError);
      expect((error as SbeError).code).to.equal('SOURCE_QUERY');
      const message = (error as SbeError).message;
      expect(message).to.include('cannot be read by this user: actor.usr_message.id, actor.usr_message.message, actor.usr_message.deleted, money.materialized_billable_xact_summary.id');
      expect(message).to.include(`GRANT USAGE ON SCHEMA actor, money TO "${READER}";`);
      expect(message).to.include(`GRANT SELECT (id, message, deleted) ON actor.usr_message TO "${READER}";`);
      expect(message).to.include(`GRANT SELECT (id, usr, xact_start, xact_finish, balance_owed) ON money.materialized_billable_xact_summary TO "${READER}";`);
      expect(message).not.to.include('do not exist');

      for (const grant of evergreenGrants(target).filter((statement) => / ON (actor\.usr_message|money\.)/.test(statement))) await db.raw(grant);
      await evergreen.check(reader, dialectFor('pg', reader), target);
      const readerHarness = new ExportHarness('evergreen', readerUrl.toString());
      try {
        const { xml } = await readerHarness.run({ rules: [] });
        expect(elements(xml, 'userId')).to.deep.equal(['B001', 'B002', 'B006', 'B007', 'B009', 'carol']);
      } finally {
        readerHarness.close();
      }
    } finally {
      await reader.destroy();
      await db.raw(`drop owned by "${READER}"`);
    }
    expect(evergreenGrants(parseDatabaseUrl('postgres://sbe@db/evergreen'))).to.deep.equal([
      'GRANT USAGE ON SCHEMA actor, config, money, permission TO "sbe";',
      'GRANT SELECT (id, barcode) ON actor.card TO "sbe";',
      'GRANT SELECT (id, card, profile, usrname, ident_value, ident_value2, first_given_name, family_name, active, deleted) ON actor.usr TO "sbe";',
      'GRANT SELECT (id, message, deleted) ON actor.usr_message TO "sbe";',
      'GRANT SELECT (id, usr, standing_penalty, set_date, stop_date, usr_message) ON actor.usr_standing_penalty TO "sbe";',
      'GRANT SELECT (id, name, label, block_list) ON config.standing_penalty TO "sbe";',
      'GRANT SELECT (id, usr, xact_start, xact_finish, balance_owed) ON money.materialized_billable_xact_summary TO "sbe";',
      'GRANT SELECT (id, name, parent, description) ON permission.grp_tree TO "sbe";',
    ]);
  });

  it('check() names columns that do not exist (an older Evergreen: no usr_standing_penalty.usr_message)', async () => {
    await db.raw('alter table actor.usr_standing_penalty rename column usr_message to usr_message_renamed');
    try {
      const result = await harness.fail({ rules: [] });
      expect(result.code).to.equal(3);
      expect(result.stderr).to.include('these columns do not exist: actor.usr_standing_penalty.usr_message');
    } finally {
      await db.raw('alter table actor.usr_standing_penalty rename column usr_message_renamed to usr_message');
    }
  });

  it('check() reports blocking penalties without set_date (SOURCE_DATA, exit 3)', async () => {
    await db('actor.usr_standing_penalty').insert({ id: 1099, org_unit: 1, usr: 3, standing_penalty: 22, set_date: null, stop_date: null });
    try {
      const result = await harness.fail({ rules: [] });
      expect(result.code).to.equal(3);
      expect(result.stderr).to.include('actor.usr_standing_penalty without set_date: id 1099');
    } finally {
      await db('actor.usr_standing_penalty').where('id', 1099).delete();
    }
  });
});
