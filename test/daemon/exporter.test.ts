import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { createSqliteSource, insertUsers, type TestSource, type UserFixture } from '../helpers/sourceDb';
import { runBin, runCli } from '../helpers/cli';
import { xmllintValidate } from '../helpers/xmllint';

const NOW = '2026-12-04T02:00:00Z';

interface Setup {
  source: TestSource;
  stateDir: string;
  inbox: string;
  env: NodeJS.ProcessEnv;
  writeProfile(profile: Record<string, unknown>): string;
}

async function setup(users: readonly UserFixture[]): Promise<Setup> {
  const source = await createSqliteSource();
  await insertUsers(source.knex, users);
  const stateDir = path.join(source.dir, 'state');
  const inbox = path.join(source.dir, 'inbox');
  fs.mkdirSync(inbox);
  return {
    source,
    stateDir,
    inbox,
    env: { SIS_BLOCK_EXPORT_STATE_DIR: stateDir },
    writeProfile(profile) {
      const file = path.join(source.dir, `${String(profile.id ?? 'test')}.yaml`);
      const document = { id: 'test', currency: 'USD', database: source.url, delivery: { transport: 'local', directory: 'inbox' }, ...profile };
      fs.writeFileSync(file, stringify(document));
      return file;
    },
  };
}

function inboxFiles(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** The text of every element `name` in order. */
function elements(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((match) => match[1]!);
}

describe('export (SPEC 3 selection, SPEC 5 file, local delivery)', function () {
  this.timeout(60_000);
  let current: Setup | undefined;
  afterEach(async () => {
    await current?.source.close();
    current = undefined;
  });

  async function exportOnce(users: readonly UserFixture[], profile: Record<string, unknown>, extraArgs: string[] = []) {
    current = await setup(users);
    const file = current.writeProfile(profile);
    const result = await runCli(['export', '--profile', file, '--now', NOW, ...extraArgs], current.env);
    const delivered = inboxFiles(current.inbox);
    const xml = delivered.length === 1 ? fs.readFileSync(path.join(current.inbox, delivered[0]!), 'utf8') : '';
    return { result, delivered, xml };
  }

  it('exports the SPEC 3 edge cases exactly', async () => {
    const { result, delivered, xml } = await exportOnce(
      [
        // Block expiring exactly at now does not count; one expiring a second later does.
        { id: 1, primaryId: 'expires-now', blocks: [{ expires: '2026-12-04T02:00:00Z' }] },
        { id: 2, primaryId: 'expires-later', blocks: [{ expires: '2026-12-04 02:00:01' }] },
        { id: 3, primaryId: 'expires-now-sqlite-form', blocks: [{ expires: '2026-12-04 02:00:00' }] },
        { id: 4, primaryId: 'expires-in-ms', blocks: [{ expires: '2026-12-04T02:00:00.001Z' }] },
        { id: 5, primaryId: 'inactive-block', blocks: [{ status: 'INACTIVE' }] },
        // Fine exactly 30 days old counts; one second younger does not.
        { id: 6, primaryId: 'fine-30-days', fines: [{ balance: 501, created: '2026-11-04T02:00:00Z' }] },
        { id: 7, primaryId: 'fine-too-young', fines: [{ balance: 501, created: '2026-11-04T02:00:01Z' }] },
        // Threshold 5.00: equal is not exported, one cent above is.
        { id: 8, primaryId: 'equal', fines: [{ balance: 500, created: '2026-01-01 00:00:00' }] },
        { id: 9, primaryId: 'cent-above', fines: [{ balance: 250, created: '2026-01-01' + 'T00:00:00Z' }, { balance: 251, created: '2025-06-01 12:00:00' }] },
        { id: 10, primaryId: 'credit', fines: [{ balance: 1000, created: '2026-01-01T00:00:00Z' }, { balance: -600, created: '2026-01-02T00:00:00Z' }] },
        { id: 11, primaryId: 'closed', fines: [{ balance: 1000, status: 'CLOSED', created: '2026-01-01T00:00:00Z' }] },
        { id: 12, primaryId: 'internal', accountType: 'INTERNAL', blocks: [{}] },
      ],
      { rules: [{ rule: 'fine-age', with: { days: 30 } }, { rule: 'threshold', with: { amount: '5.00' } }] },
    );
    expect(result.code, result.stderr).to.equal(0);
    expect(delivered).to.have.length(1);
    expect(elements(xml, 'userId')).to.deep.equal(['cent-above', 'expires-in-ms', 'expires-later', 'fine-30-days', 'internal']);
    expect(xml).to.match(/<summary activeBalanceTotal="10.02" blocks="3" skippedMissingMatchId="0" users="5"><\/summary>/);
    expect((await xmllintValidate(path.join(current!.inbox, delivered[0]!))).ok).to.equal(true);
  });

  it('writes the user fields, balances and blocks in order, omitting absent values', async () => {
    const { result, xml } = await exportOnce(
      [
        {
          id: 1,
          primaryId: 'jdoe',
          firstName: 'Jane',
          lastName: 'Doe & <Sons> "Ltd" \'x\'',
          group: 'GRAD',
          ids: { STUDENT_ID: 'S0001' },
          blocks: [
            { id: 20, type: 'LOAN', created: '2026-10-01 12:00:00', description: null, note: 'late ]]> again\tnow' },
            { id: 10, type: 'CASH', created: '2026-10-01T12:00:00.000Z', expires: '2027-01-01 00:00:00', description: 'Unpaid bill' },
            { id: 5, type: 'LOST', created: '2026-09-30T23:59:59.999Z', description: '未返却 😀' },
          ],
          // Active balance counts every ACTIVE row, however young, credits included.
          fines: [{ balance: 1250, created: '2026-12-03T00:00:00Z' }, { balance: -300 }, { balance: 7, status: 'CLOSED' }],
        },
        { id: 2, primaryId: 'anon', firstName: null, lastName: null, group: null, ids: { STUDENT_ID: 'S0002' }, fines: [{ balance: 1 }] },
      ],
      { rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID' } }] },
    );
    expect(result.code, result.stderr).to.equal(0);
    const start = xml.indexOf('<user>');
    expect(xml.slice(start, xml.indexOf('<summary'))).to.equal(
      [
        '<user>',
        '    <userId>S0001</userId>',
        '    <primaryId>jdoe</primaryId>',
        '    <firstName>Jane</firstName>',
        '    <lastName>Doe &amp; &lt;Sons&gt; "Ltd" \'x\'</lastName>',
        '    <userGroup>GRAD</userGroup>',
        '    <accountType>EXTERNAL</accountType>',
        '    <activeBalance>9.50</activeBalance>',
        '    <blocks>',
        '      <block>',
        '        <blockType>LOST</blockType>',
        '        <description>未返却 😀</description>',
        '        <createdDate>2026-09-30T23:59:59Z</createdDate>',
        '      </block>',
        '      <block>',
        '        <blockType>CASH</blockType>',
        '        <description>Unpaid bill</description>',
        '        <createdDate>2026-10-01T12:00:00Z</createdDate>',
        '        <expiryDate>2027-01-01T00:00:00Z</expiryDate>',
        '      </block>',
        '      <block>',
        '        <blockType>LOAN</blockType>',
        '        <createdDate>2026-10-01T12:00:00Z</createdDate>',
        '        <note>late ]]&gt; again\tnow</note>',
        '      </block>',
        '    </blocks>',
        '  </user>',
        '  <user>',
        '    <userId>S0002</userId>',
        '    <primaryId>anon</primaryId>',
        '    <accountType>EXTERNAL</accountType>',
        '    <activeBalance>0.01</activeBalance>',
        '    <blocks></blocks>',
        '  </user>',
        '  ',
      ].join('\n'),
    );
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<userBlocksExport xmlns="urn:sis-block-export:user-blocks:1" currency="USD" generatedAt="2026-12-04T02:00:00Z" matchIdType="STUDENT_ID" profile="test" runId="test-20261204T020000Z" version="1">\n')).to.equal(true);
  });

  it('skips users without the match id (counted, logged) or exports them with the primary id', async () => {
    const users: UserFixture[] = [
      { id: 1, primaryId: 'has', ids: { STUDENT_ID: 'S1' }, blocks: [{}] },
      { id: 2, primaryId: 'lacks', ids: { BARCODE: 'B2' }, blocks: [{}] },
    ];
    const skip = await exportOnce(users, { rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'skip' } }] });
    expect(skip.result.code).to.equal(0);
    expect(elements(skip.xml, 'userId')).to.deep.equal(['S1']);
    expect(skip.xml).to.include('skippedMissingMatchId="1" users="1"');
    expect(skip.result.stderr).to.match(/1 user\(s\) skipped: no STUDENT_ID identifier .*examples=lacks/);
    expect(skip.result.stdout).to.include('skipped (no STUDENT_ID identifier): 1');
    await current!.source.close();
    current = undefined;

    const primary = await exportOnce(users, { rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'primary' } }] });
    expect(elements(primary.xml, 'userId')).to.deep.equal(['S1', 'lacks']);
    expect(primary.xml).to.include('skippedMissingMatchId="0" users="2"');
  });

  it('reports an unreadable timestamp with table, column and row id (exit 3), writing nothing', async () => {
    const { result, delivered } = await exportOnce(
      [
        { id: 1, primaryId: 'a', blocks: [{ id: 41, created: '2026-02-30 10:00:00' }] },
        { id: 2, primaryId: 'b', fines: [{ id: 42, balance: 5, created: 'yesterday' }] },
        { id: 3, primaryId: 'c', blocks: [{ id: 43, expires: '2026-13-01T00:00:00Z' }] },
        { id: 4, primaryId: 'd', blocks: [{ id: 44, created: '2026-11-01T10:00:00+02:00' }] },
      ],
      {},
    );
    expect(result.code).to.equal(3);
    expect(result.stderr).to.include('user_blocks.created_at of row id 41: "2026-02-30 10:00:00"');
    expect(result.stderr).to.include('user_blocks.created_at of row id 44');
    expect(result.stderr).to.include('user_blocks.expires_at of row id 43');
    expect(result.stderr).to.include('fines_fees.created_at of row id 42: "yesterday"');
    expect(delivered).to.deep.equal([]);
    expect(fs.existsSync(path.join(current!.stateDir, 'outbox')) ? fs.readdirSync(path.join(current!.stateDir, 'outbox')) : []).to.deep.equal([]);
  });

  it('ignores unreadable timestamps on rows the selection does not read', async () => {
    const { result } = await exportOnce([{ id: 1, primaryId: 'a', blocks: [{ status: 'INACTIVE', created: 'garbage' }], fines: [{ balance: 3, status: 'CLOSED', created: 'garbage' }] }], {});
    expect(result.code, result.stderr).to.equal(0);
  });

  it('--dry-run prints the SQL and the counts and writes nothing', async () => {
    const { result, delivered } = await exportOnce([{ id: 1, primaryId: 'a', blocks: [{}] }], {}, ['--dry-run']);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/^-- selection SQL \(sqlite\)\nselect `u`.`id` as `user_pk`/);
    expect(result.stdout).to.include('dry run test-20261204T020000Z: 1 user(s), 1 block(s), active balance total 0.00 USD');
    expect(delivered).to.deep.equal([]);
    expect(fs.existsSync(path.join(current!.stateDir, 'outbox'))).to.equal(false);
  });

  it('keeps the export in the outbox, leaves no temp file, and gives a second run at the same time a -2 run id', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const file = current.writeProfile({ output: { fileName: '{profile}-{date}-{runId}.xml' } });
    const first = await runCli(['export', '--profile', file, '--now', NOW, '--json'], current.env);
    const second = await runCli(['export', '--profile', file, '--now', NOW, '--json'], current.env);
    expect(first.code, first.stderr).to.equal(0);
    expect(second.code, second.stderr).to.equal(0);
    expect(JSON.parse(first.stdout).runId).to.equal('test-20261204T020000Z');
    expect(JSON.parse(second.stdout).runId).to.equal('test-20261204T020000Z-2');
    expect(inboxFiles(current.inbox)).to.deep.equal(['test-20261204-test-20261204T020000Z-2.xml', 'test-20261204-test-20261204T020000Z.xml']);
    const outboxed = JSON.parse(first.stdout).file;
    expect(fs.readFileSync(outboxed.path)).to.deep.equal(fs.readFileSync(path.join(current.inbox, outboxed.name)));
    expect(fs.readdirSync(path.dirname(outboxed.path))).to.deep.equal([outboxed.name]);
  });

  it('refuses delivery to a missing directory (exit 5) and keeps the built export', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const file = current.writeProfile({ delivery: { transport: 'local', directory: 'no-such-dir' } });
    const result = await runCli(['export', '--profile', file, '--now', NOW], current.env);
    expect(result.code).to.equal(5);
    expect(result.stderr).to.match(/directory .*no-such-dir does not exist/);
    const outbox = path.join(current.stateDir, 'outbox', 'test-20261204T020000Z');
    expect(fs.readdirSync(outbox)).to.deep.equal(['user-blocks-test-20261204T020000Z.xml']);
  });

  it('exits 3 when the source database file does not exist, and 2 on a bad --now', async () => {
    current = await setup([]);
    const file = current.writeProfile({ database: `sqlite://${path.join(current.source.dir, 'missing.db')}` });
    const missing = await runCli(['export', '--profile', file], current.env);
    expect(missing.code).to.equal(3);
    expect(missing.stderr).to.match(/missing\.db does not exist/);
    const badNow = await runCli(['export', '--profile', file, '--now', 'tomorrow'], current.env);
    expect(badNow.code).to.equal(2);
    expect(badNow.stderr).to.include('--now "tomorrow" is not an ISO 8601 time');
  });

  it('runs from bin/sis-block-export: --help, usage errors (exit 2) and an export by profile id', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const help = await runBin(['export', '--help'], current.env);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('--dry-run');
    expect(help.stdout).to.include('4  delivery failed');
    const usage = await runBin(['export'], current.env);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.include("required option '--profile <file|id>' not specified");
    const unknown = await runBin(['frobnicate'], current.env);
    expect(unknown.code).to.equal(2);

    const profilesDir = path.join(current.source.dir, 'profiles.d');
    fs.mkdirSync(profilesDir);
    fs.renameSync(current.writeProfile({ id: 'by-id', delivery: { transport: 'local', directory: '../inbox' } }), path.join(profilesDir, 'by-id.yaml'));
    fs.writeFileSync(path.join(current.source.dir, 'config.yaml'), stringify({ profilesDir: 'profiles.d', stateDir: 'state' }));
    const byId = await runBin(['export', '--profile', 'by-id', '--config', path.join(current.source.dir, 'config.yaml'), '--now', NOW], {});
    expect(byId.code, byId.stderr).to.equal(0);
    expect(inboxFiles(current.inbox)).to.deep.equal(['user-blocks-by-id-20261204T020000Z.xml']);
  });
});

describe('export with the run ledger (SPEC 8)', function () {
  this.timeout(60_000);
  let current: Setup | undefined;
  afterEach(async () => {
    await current?.source.close();
    current = undefined;
  });

  it('never delivers an older snapshot after a newer one: the older failed delivery is superseded', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const file = current.writeProfile({ delivery: { transport: 'local', directory: 'inbox-later' } });
    const first = await runCli(['export', '--profile', file, '--now', '2026-12-01T02:00:00Z'], current.env);
    expect(first.code).to.equal(5);
    fs.mkdirSync(path.join(current.source.dir, 'inbox-later'));
    const second = await runCli(['export', '--profile', file, '--now', '2026-12-02T02:00:00Z'], current.env);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stderr).to.include('snapshot test-20261201T020000Z superseded by test-20261202T020000Z');
    expect(inboxFiles(path.join(current.source.dir, 'inbox-later'))).to.deep.equal(['user-blocks-test-20261202T020000Z.xml']);
    const status = await runCli(['status'], current.env);
    expect(status.code).to.equal(0);
    expect(status.stdout).to.match(/test-20261202T020000Z\s+delivered\s+1 users, user-blocks-test-20261202T020000Z.xml, 1 attempt\(s\)/);
    expect(status.stdout).to.match(/test-20261201T020000Z\s+superseded\s+1 users, .*last error: superseded by test-20261202T020000Z/);
    const json = JSON.parse((await runCli(['status', '--json', '--profile', 'test'], current.env)).stdout) as Record<string, { runId: string; state: string }[]>;
    expect(json.test!.map((run) => [run.runId, run.state])).to.deep.equal([['test-20261202T020000Z', 'delivered'], ['test-20261201T020000Z', 'superseded']]);
  });

  it('delivers the pending older snapshot when the new build fails', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const file = current.writeProfile({ delivery: { transport: 'local', directory: 'inbox-later' } });
    expect((await runCli(['export', '--profile', file, '--now', '2026-12-01T02:00:00Z'], current.env)).code).to.equal(5);
    fs.mkdirSync(path.join(current.source.dir, 'inbox-later'));
    await current.source.knex('fines_fees').insert({ id: 99, user_id: 1, status: 'ACTIVE', balance_minor: 1, currency: 'USD', created_at: 'not a time' });
    const second = await runCli(['export', '--profile', file, '--now', '2026-12-02T02:00:00Z'], current.env);
    expect(second.code).to.equal(3);
    expect(second.stderr).to.include('delivering pending snapshot test-20261201T020000Z');
    expect(inboxFiles(path.join(current.source.dir, 'inbox-later'))).to.deep.equal(['user-blocks-test-20261201T020000Z.xml']);
    const status = await runCli(['status', '--json'], current.env);
    const runs = (JSON.parse(status.stdout) as Record<string, { runId: string; state: string; lastError: string | null }[]>).test!;
    expect(runs.map((run) => [run.runId, run.state])).to.deep.equal([['test-20261202T020000Z', 'failed'], ['test-20261201T020000Z', 'delivered']]);
    expect(runs[0]!.lastError).to.include('fines_fees.created_at of row id 99');
  });

  it('retries a transient local failure per the profile policy and gives up with exit 4, keeping the export', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    // A file where the directory should be: ENOTDIR is a refusal; a full disk would be transient.
    // Here: the target directory exists but a directory occupies the temp name, so the copy fails with EISDIR.
    fs.mkdirSync(path.join(current.inbox, '.user-blocks-test-20261204T020000Z.xml.part'));
    const file = current.writeProfile({ delivery: { transport: 'local', directory: 'inbox', retry: { attempts: 3, initialDelay: '10ms', maxDelay: '20ms' } } });
    const result = await runCli(['export', '--profile', file, '--now', NOW], current.env);
    expect(result.code).to.equal(4);
    expect(result.stderr.match(/attempt \d of 3 failed, retrying/g)).to.have.length(2);
    expect(result.stderr).to.include('failed after 3 attempt(s)');
    expect(fs.existsSync(path.join(current.stateDir, 'outbox', 'test-20261204T020000Z', 'user-blocks-test-20261204T020000Z.xml'))).to.equal(true);
    const status = JSON.parse((await runCli(['status', '--json'], current.env)).stdout) as Record<string, { state: string; attempts: number }[]>;
    expect(status.test![0]).to.include({ state: 'failed', attempts: 3 });
  });

  it('prunes outbox files of delivered runs older than outboxRetention; the ledger keeps the rows', async () => {
    current = await setup([{ id: 1, primaryId: 'a', blocks: [{}] }]);
    const file = current.writeProfile({});
    const config = path.join(current.source.dir, 'config.yaml');
    fs.writeFileSync(config, stringify({ stateDir: 'state', outboxRetention: '1ms' }));
    expect((await runCli(['export', '--config', config, '--profile', file, '--now', '2026-12-01T02:00:00Z'], {})).code).to.equal(0);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await runCli(['export', '--config', config, '--profile', file, '--now', '2026-12-02T02:00:00Z'], {})).code).to.equal(0);
    const outbox = path.join(current.source.dir, 'state', 'outbox');
    expect(fs.readdirSync(outbox)).to.not.include('test-20261201T020000Z');
    const runs = (JSON.parse((await runCli(['status', '--json', '--config', config], {})).stdout) as Record<string, { runId: string; state: string; files: unknown[] }[]>).test!;
    expect(runs.map((run) => [run.runId, run.state])).to.deep.equal([['test-20261202T020000Z', 'delivered'], ['test-20261201T020000Z', 'delivered']]);
    expect(runs[1]!.files).to.deep.equal([]);
  });
});
