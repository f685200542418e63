import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import type { DialectName } from '../../daemon/database';
import { seedDemo } from '../../daemon/seed';
import { runCli } from '../helpers/cli';
import { availableDialects, createDialectSource, type DialectSource } from '../helpers/dialectDb';
import { insertUsers, type UserFixture } from '../helpers/sourceDb';
import { xmllintValidate } from '../helpers/xmllint';

const NOW = '2026-12-04T02:00:00Z';

/** SPEC 3 edge cases and the text traps of each dialect, added to a seeded demo library. */
const EDGE_CASES: UserFixture[] = [
  { id: 10_001, primaryId: 'expires-now', ids: { STUDENT_ID: 'S-EDGE-01' }, blocks: [{ expires: '2026-12-04T02:00:00Z' }] },
  { id: 10_002, primaryId: 'expires-later', ids: { STUDENT_ID: 'S-EDGE-02' }, blocks: [{ expires: '2026-12-04T02:00:01Z' }] },
  { id: 10_003, primaryId: 'expires-in-ms', blocks: [{ expires: '2026-12-04T02:00:00.001Z' }] },
  { id: 10_004, primaryId: 'inactive-block', blocks: [{ status: 'INACTIVE' }] },
  { id: 10_005, primaryId: 'fine-30-days', fines: [{ balance: 501, created: '2026-11-04T02:00:00Z' }] },
  { id: 10_006, primaryId: 'fine-too-young', fines: [{ balance: 501, created: '2026-11-04T02:00:01Z' }] },
  { id: 10_007, primaryId: 'equal', fines: [{ balance: 500 }] },
  { id: 10_008, primaryId: 'cent-above', fines: [{ balance: 250 }, { balance: 251 }] },
  { id: 10_009, primaryId: 'credit', fines: [{ balance: 1000 }, { balance: -600 }] },
  { id: 10_010, primaryId: 'closed', fines: [{ balance: 1000, status: 'CLOSED' }] },
  { id: 10_011, primaryId: 'big-sum', fines: [{ balance: 9_007_199_254_740_000 }, { balance: 991 }] },
  { id: 10_012, primaryId: 'lower-case-group', group: 'ug', blocks: [{}] },
  { id: 10_013, primaryId: 'padded-group', group: 'UG ', blocks: [{}] },
  { id: 10_014, primaryId: 'B-upper', blocks: [{}] },
  { id: 10_015, primaryId: 'b-lower', blocks: [{}] },
  { id: 10_016, primaryId: 'é-accent', blocks: [{}] },
  { id: 10_017, primaryId: '\uFFFD-replacement', blocks: [{}] },
  { id: 10_018, primaryId: '😀-astral', lastName: 'Ωmega & <co> "q" 𠀀', blocks: [{ note: 'tab\there\r\nCRLF', description: 'ümlaut' }] },
  { id: 10_019, primaryId: 'same-created', blocks: [{ id: 99_002, created: '2026-05-01T00:00:00Z' }, { id: 99_001, created: '2026-05-01T00:00:00Z' }, { id: 99_003, created: '2026-04-30T23:59:59.999Z' }] },
  { id: 10_020, primaryId: 'internal', accountType: 'INTERNAL', ids: { STUDENT_ID: 's-edge-lower' }, blocks: [{ type: 'NOTE' }] },
];

const PROFILES: Record<string, Record<string, unknown>[]> = {
  defaults: [],
  banner: [
    { rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'skip' } },
    { rule: 'user-groups', with: { include: ['UG', 'GRAD'] } },
    { rule: 'block-types', with: { include: ['CASH', 'LOAN'] } },
    { rule: 'fine-age', with: { days: 30 } },
    { rule: 'threshold', with: { amount: '5.00' } },
  ],
  barcodes: [
    { rule: 'match-id', with: { idType: 'BARCODE', missing: 'primary' } },
    { rule: 'exclude-internal' },
    { rule: 'fine-age', with: { days: 0 } },
  ],
  excludes: [
    { rule: 'user-groups', with: { exclude: ['ALUMNI'] } },
    { rule: 'block-types', with: { exclude: ['NOTE'] } },
    { rule: 'threshold', with: { amount: '0.01' } },
  ],
};

/** The export without what differs by run: run id and profile id. */
function normalized(xml: string): string {
  return xml.replace(/ profile="[^"]*"/, '').replace(/ runId="[^"]*"/, '');
}

describe('identical exports on SQLite, PostgreSQL and MariaDB (issue 6)', function () {
  this.timeout(180_000);
  const dialects = availableDialects();
  const sources = new Map<DialectName, DialectSource>();
  let work: string;

  before(async function () {
    if (dialects.length < 2) {
      console.log(`    (only ${dialects.join(', ')}: set PG_URL and MYSQL_URL to compare dialects)`);
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-dialects-'));
    for (const dialect of dialects) {
      const source = await createDialectSource(dialect, 'sbe_dialects');
      sources.set(dialect, source);
      await source.knex('user_groups').insert([{ code: 'ug', description: 'lower case' }, { code: 'UG ', description: 'padded' }]);
      await seedDemo(source.knex, { users: 400, seed: 7, currency: 'USD', now: new Date('2026-11-20T00:00:00Z'), dialect });
      await insertUsers(source.knex, EDGE_CASES);
    }
  });

  after(async () => {
    for (const source of sources.values()) await source.drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function exportOn(dialect: DialectName, name: string, rules: Record<string, unknown>[]): Promise<string> {
    const dir = path.join(work, `${dialect}-${name}-${Math.random().toString(36).slice(2, 8)}`);
    fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
    const profile = path.join(dir, 'profile.yaml');
    fs.writeFileSync(profile, stringify({ id: `${name}-${dialect}`, currency: 'USD', database: sources.get(dialect)!.url, rules, delivery: { transport: 'local', directory: 'inbox' } }));
    const result = await runCli(['export', '--profile', profile, '--now', NOW], { SIS_BLOCK_EXPORT_STATE_DIR: path.join(dir, 'state') });
    expect(result.code, `${dialect} ${name}: ${result.stderr}`).to.equal(0);
    const [file] = fs.readdirSync(path.join(dir, 'inbox'));
    const full = path.join(dir, 'inbox', file!);
    const validation = await xmllintValidate(full);
    expect(validation.ok, validation.output).to.equal(true);
    return fs.readFileSync(full, 'utf8');
  }

  for (const [name, rules] of Object.entries(PROFILES)) {
    it(`profile "${name}": byte-identical files apart from run id and profile`, async () => {
      const files = new Map<DialectName, string>();
      for (const dialect of dialects) files.set(dialect, normalized(await exportOn(dialect, name, rules)));
      const reference = files.get('sqlite')!;
      expect(reference).to.include('<user>');
      for (const [dialect, xml] of files) expect(xml, `${dialect} differs from sqlite`).to.equal(reference);
    });
  }

  it('the edge cases come out as specified on every dialect', async () => {
    for (const dialect of dialects) {
      const xml = await exportOn(dialect, 'defaults', PROFILES.defaults!);
      const ids = [...xml.matchAll(/<userId>([^<]*)<\/userId>/g)].map((match) => match[1]!);
      const edge = ids.filter((id) => EDGE_CASES.some((user) => user.primaryId === id));
      expect(edge, dialect).to.deep.equal([
        'B-upper', 'b-lower', 'big-sum', 'cent-above', 'credit', 'equal', 'expires-in-ms', 'expires-later', 'fine-30-days', 'fine-too-young',
        'internal', 'lower-case-group', 'padded-group', 'same-created', 'é-accent', '\uFFFD-replacement', '😀-astral',
      ]);
      expect(xml).to.include('<activeBalance>90071992547409.91</activeBalance>');
      const sameCreated = xml.slice(xml.indexOf('<userId>same-created</userId>'));
      expect([...sameCreated.slice(0, sameCreated.indexOf('</user>')).matchAll(/<createdDate>([^<]*)</g)].map((m) => m[1])).to.deep.equal([
        '2026-04-30T23:59:59Z', '2026-05-01T00:00:00Z', '2026-05-01T00:00:00Z',
      ]);
    }
  });

  it('does not depend on the host time zone', async () => {
    const saved = process.env.TZ;
    process.env.TZ = 'Pacific/Auckland';
    try {
      const reference = normalized(await exportOn('sqlite', 'banner', PROFILES.banner!));
      for (const dialect of dialects) expect(normalized(await exportOn(dialect, 'banner', PROFILES.banner!)), dialect).to.equal(reference);
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });
});
