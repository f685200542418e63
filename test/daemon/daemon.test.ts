/**
 * System tests of the daemon: the real `bin/sis-block-export run` as a child process, a
 * SQLite source, local delivery into a temp inbox, a temp state directory.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { Ledger } from '../../daemon/ledger';
import { previousOccurrence } from '../../daemon/scheduler';
import { seedDemo } from '../../daemon/seed';
import { compactTimestamp } from '../../daemon/timestamps';
import { killAllDaemons, startDaemon, type DaemonProcess } from '../helpers/daemonProcess';
import { NotifyListener } from '../helpers/notifySocket';
import { createSqliteSource, insertUsers, type TestSource } from '../helpers/sourceDb';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Site {
  dir: string;
  configFile: string;
  profilesDir: string;
  inbox: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  writeConfig(values?: Record<string, unknown>): void;
  profileText(profile: Record<string, unknown>): string;
  writeProfile(name: string, profile: Record<string, unknown>, dir?: string): string;
  /** Files in the inbox (hidden temp files included), sorted. */
  inboxFiles(): string[];
  exportsOf(profileId: string): string[];
}

const sites: string[] = [];

function makeSite(sourceUrl: string, config: Record<string, unknown> = {}): Site {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-daemon-'));
  sites.push(dir);
  const profilesDir = path.join(dir, 'profiles.d');
  const inbox = path.join(dir, 'inbox');
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(profilesDir);
  fs.mkdirSync(inbox);
  const configFile = path.join(dir, 'config.yaml');
  const site: Site = {
    dir,
    configFile,
    profilesDir,
    inbox,
    stateDir,
    env: { SIS_BLOCK_EXPORT_STATE_DIR: stateDir },
    writeConfig(values = {}) {
      fs.writeFileSync(configFile, stringify({ profilesDir: 'profiles.d', database: sourceUrl, shutdownGrace: '5s', ...config, ...values }));
    },
    profileText(profile) {
      return stringify({ currency: 'USD', timezone: 'UTC', delivery: { transport: 'local', directory: inbox }, ...profile });
    },
    writeProfile(name, profile, into = profilesDir) {
      const file = path.join(into, name);
      fs.writeFileSync(file, site.profileText(profile));
      return file;
    },
    inboxFiles: () => fs.readdirSync(inbox).sort(),
    exportsOf: (profileId) => fs.readdirSync(inbox).filter((name) => name.startsWith(`user-blocks-${profileId}-2`)).sort(),
  };
  site.writeConfig();
  return site;
}

/** Every file below `dir`, relative. */
function filesBelow(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)));
}

const SMALL_USERS = [
  { id: 1, primaryId: 'jdoe', ids: { STUDENT_ID: 'S0001' }, blocks: [{}] },
  { id: 2, primaryId: 'asmith', ids: { STUDENT_ID: 'S0002' }, fines: [{ balance: 1250 }] },
  { id: 3, primaryId: 'nostudentid', blocks: [{}] },
];

const DAILY = '0 2 * * *';

/** The two latest occurrences of the daily schedule before now: [previous, the one before]. */
function dailyOccurrences(): [Date, Date] {
  const previous = previousOccurrence(DAILY, 'UTC', new Date())!;
  return [previous, previousOccurrence(DAILY, 'UTC', previous)!];
}

/** The ledger says the profile's scheduled run at `runTime` was delivered. */
async function recordDeliveredRun(stateDir: string, profileId: string, runTime: Date): Promise<void> {
  const ledger = await Ledger.open(stateDir);
  try {
    await ledger.markDelivered(await ledger.claimRun(profileId, runTime, true));
  } finally {
    await ledger.close();
  }
}

async function runState(stateDir: string, runId: string): Promise<string | undefined> {
  const ledger = await Ledger.open(stateDir);
  try {
    return (await ledger.get(runId))?.state;
  } finally {
    await ledger.close();
  }
}

describe('daemon (sis-block-export run)', function () {
  this.timeout(60_000);
  let small: TestSource;
  const listeners: NotifyListener[] = [];

  before(async () => {
    small = await createSqliteSource();
    await insertUsers(small.knex, SMALL_USERS);
  });
  after(async () => {
    await small.close();
  });
  afterEach(async () => {
    await killAllDaemons();
    for (const listener of listeners.splice(0)) listener.close();
    for (const dir of sites.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function startReady(site: Site, env: NodeJS.ProcessEnv = {}): Promise<DaemonProcess> {
    const daemon = startDaemon(['--config', site.configFile], { ...site.env, ...env });
    await daemon.waitForLine(/ready: \d+ profile/);
    return daemon;
  }

  it('runs a seconds schedule; a dropped profile starts, an invalid edit keeps the last valid version, a removed profile stops', async () => {
    const site = makeSite(small.url);
    site.writeProfile('every.yaml', { id: 'every', schedule: '*/1 * * * * *' });
    const daemon = await startReady(site);
    await daemon.waitFor(() => site.exportsOf('every').length >= 3, 'three exports of every', 8000);

    const laterFile = site.writeProfile('later.yaml', { id: 'later', schedule: '*/1 * * * * *' });
    await daemon.waitFor(() => site.exportsOf('later').length >= 2, 'two exports of the dropped profile', 8000);

    const from = daemon.mark();
    fs.writeFileSync(laterFile, [
      'id: later',
      'currency: USD',
      'schedule: "*/1 * * * * *"',
      'timezone: UTC',
      'rules:',
      '  - rule: no-such-rule',
      `delivery: { transport: local, directory: ${site.inbox} }`,
      '',
    ].join('\n'));
    const error = await daemon.waitForLine(/ error /, { from, timeoutMs: 8000 });
    expect(error).to.contain(`${laterFile}:6:`);
    expect(error).to.contain('unknown rule "no-such-rule"');
    expect(error).to.contain('the last valid version of profile later stays in effect');
    const laterBefore = site.exportsOf('later').length;
    await daemon.waitFor(() => site.exportsOf('later').length >= laterBefore + 2, 'later to keep running its last valid version', 5000);
    expect(daemon.matching(/ error /, from), 'the invalid version is reported once').to.have.length(1);

    const removedFrom = daemon.mark();
    fs.rmSync(path.join(site.profilesDir, 'every.yaml'));
    await daemon.waitForLine(/profile removed: no further runs.* profile=every/, { from: removedFrom, timeoutMs: 8000 });
    const everyAfterRemoval = site.exportsOf('every').length;
    const laterAfterRemoval = site.exportsOf('later').length;
    await sleep(2500);
    expect(site.exportsOf('every').length, 'no run of a removed profile starts').to.be.at.most(everyAfterRemoval + 1);
    expect(site.exportsOf('later').length, 'other profiles are not affected').to.be.at.least(laterAfterRemoval + 2);

    const exit = await daemon.stop('SIGTERM');
    expect(exit.code, daemon.output()).to.equal(0);
    expect(daemon.matching(/ error /).length, 'only the invalid edit logged an error').to.equal(1);
  });

  it('does not read a profile written in two halves before it is complete', async () => {
    const site = makeSite(small.url);
    const daemon = await startReady(site);
    const text = site.profileText({ id: 'halves', schedule: '*/1 * * * * *' });
    const cut = text.indexOf('delivery') + 5; // in the middle of a key: invalid YAML if read now
    const file = path.join(site.profilesDir, 'halves.yaml');
    fs.writeFileSync(file, text.slice(0, cut));
    await sleep(500);
    fs.appendFileSync(file, text.slice(cut));
    await daemon.waitForLine(/profile loaded from .*halves\.yaml/, { timeoutMs: 8000 });
    await daemon.waitFor(() => site.exportsOf('halves').length >= 1, 'an export of the completed profile', 5000);
    expect(daemon.matching(/halves\.yaml/).filter((line) => / (error|warn) /.test(line)), 'nothing was read half-written').to.deep.equal([]);
    expect((await daemon.stop()).code).to.equal(0);
  });

  it('ignores editor files and refuses a second file declaring the same id, naming both files', async () => {
    const site = makeSite(small.url);
    const first = site.writeProfile('a-first.yaml', { id: 'twin', schedule: '*/1 * * * * *' });
    const daemon = await startReady(site);
    for (const name of ['.a-first.yaml.swp', 'a-first.yaml~', '.#a-first.yaml', '4913', 'notes.txt', '.hidden.yaml']) {
      fs.writeFileSync(path.join(site.profilesDir, name), 'garbage: [\n');
    }
    const from = daemon.mark();
    const second = site.writeProfile('b-second.yaml', { id: 'twin', schedule: '*/1 * * * * *', output: { fileName: 'second-{runId}.xml' } });
    const refused = await daemon.waitForLine(/ error .*is already used by/, { from, timeoutMs: 8000 });
    expect(refused).to.contain(second);
    expect(refused).to.contain(first);
    await sleep(2500);
    expect(site.inboxFiles().filter((name) => name.startsWith('second-')), 'the refused file never runs').to.deep.equal([]);
    expect(site.exportsOf('twin').length).to.be.at.least(2);
    expect(daemon.matching(/ error /).filter((line) => !line.includes('is already used by')), 'editor files are never read').to.deep.equal([]);
    expect((await daemon.stop()).code).to.equal(0);
  });

  it('reloads config and profiles on SIGHUP (RELOADING=1 ... READY=1); a config that became invalid keeps the previous one', async () => {
    const site = makeSite(small.url);
    const notify = await NotifyListener.open();
    listeners.push(notify);
    const otherDir = path.join(site.dir, 'profiles-b');
    fs.mkdirSync(otherDir);
    site.writeProfile('a.yaml', { id: 'alpha', schedule: '*/1 * * * * *' });
    site.writeProfile('b.yaml', { id: 'beta', schedule: '*/1 * * * * *' }, otherDir);
    const daemon = await startReady(site, { NOTIFY_SOCKET: notify.path });
    await daemon.waitFor(() => site.exportsOf('alpha').length >= 1, 'an export of alpha', 5000);
    const ready = await notify.waitFor('READY=1');

    site.writeConfig({ profilesDir: 'profiles-b' });
    let from = daemon.mark();
    daemon.signal('SIGHUP');
    await daemon.waitForLine(/ reloaded: 1 profile\(s\) in effect/, { from, timeoutMs: 10_000 });
    expect(daemon.matching(/profile removed: no further runs.* profile=alpha/, from)).to.have.length(1);
    const reloading = await notify.waitFor('RELOADING=1', { from: ready + 1 });
    await notify.waitFor('READY=1', { from: reloading + 1 });
    expect(notify.indexOf(/^MONOTONIC_USEC=\d+$/, reloading)).to.equal(reloading + 1);
    await daemon.waitFor(() => site.exportsOf('beta').length >= 2, 'exports of the profile in the new directory', 5000);
    const alphaCount = site.exportsOf('alpha').length;

    fs.writeFileSync(site.configFile, 'profilesDir: [profiles-a\n');
    from = daemon.mark();
    daemon.signal('SIGHUP');
    const error = await daemon.waitForLine(/ error the configuration is not reloaded/, { from, timeoutMs: 10_000 });
    expect(error).to.contain(`${site.configFile}:`);
    await daemon.waitForLine(/ reloaded: 1 profile\(s\) in effect/, { from, timeoutMs: 10_000 });
    const betaCount = site.exportsOf('beta').length;
    await daemon.waitFor(() => site.exportsOf('beta').length >= betaCount + 2, 'beta to keep running', 5000);
    expect(site.exportsOf('alpha').length, 'alpha stays removed').to.be.at.most(alphaCount + 1);
    expect((await daemon.stop()).code).to.equal(0);
  });

  it('runs a missed scheduled run once at start; a second start does not; a profile never run before waits for its schedule', async () => {
    const site = makeSite(small.url);
    const [previous, before] = dailyOccurrences();
    site.writeProfile('daily.yaml', { id: 'daily', schedule: DAILY });
    site.writeProfile('fresh.yaml', { id: 'fresh', schedule: DAILY });
    await recordDeliveredRun(site.stateDir, 'daily', before);
    const runId = `daily-${compactTimestamp(previous)}`;

    const first = await startReady(site);
    await first.waitForLine(new RegExp(`export delivered profile=daily run=${runId} `), { timeoutMs: 10_000 });
    expect(first.matching(/was missed while the daemon was down/)).to.have.length(1);
    expect((await first.stop()).code).to.equal(0);
    expect(site.inboxFiles()).to.deep.equal([`user-blocks-${runId}.xml`]);
    expect(first.matching(/profile=fresh run=/), 'no run for a profile without history').to.deep.equal([]);

    const second = await startReady(site);
    await sleep(1500);
    expect(second.matching(/export started/), second.output()).to.deep.equal([]);
    expect((await second.stop()).code).to.equal(0);
    expect(site.inboxFiles()).to.deep.equal([`user-blocks-${runId}.xml`]);
  });

  it('notifies systemd: STATUS, READY=1, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1', async () => {
    const site = makeSite(small.url);
    site.writeProfile('daily.yaml', { id: 'daily', schedule: DAILY });
    const notify = await NotifyListener.open();
    listeners.push(notify);
    const daemon = await startReady(site, { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '1000000' });
    const ready = await notify.waitFor('READY=1');
    expect(notify.indexOf(/^STATUS=starting/), 'a status before readiness').to.be.within(0, ready);
    expect(notify.assignments()[ready + 1]).to.match(/^STATUS=1 profile\(s\);.* next run daily at /);
    const pings = notify.count('WATCHDOG=1');
    await sleep(1600);
    expect(notify.count('WATCHDOG=1') - pings, 'a ping every 500 ms').to.be.within(2, 5);
    expect((await daemon.stop()).code).to.equal(0);
    const stopping = notify.indexOf('STOPPING=1');
    expect(stopping).to.be.greaterThan(ready);
  });

  it('logs with journald priorities on every line under JOURNAL_STREAM, profile= and run= on run lines, and never a secret', async () => {
    const site = makeSite(small.url, { log: { level: 'debug' } });
    const secrets = {
      inlineDbPassword: `inline-${randomBytes(9).toString('hex')}`,
      dbPasswordFile: `file-${randomBytes(9).toString('hex')}`,
      keyPassphrase: `keypass-${randomBytes(9).toString('hex')}`,
      sftpPassphrase: `sftppass-${randomBytes(9).toString('hex')}`,
    };
    const secretDir = path.join(site.dir, 'secrets');
    fs.mkdirSync(secretDir, { mode: 0o700 });
    fs.writeFileSync(path.join(secretDir, 'db-password'), `${secrets.dbPasswordFile}\n`);
    fs.writeFileSync(path.join(secretDir, 'key-passphrase'), `${secrets.keyPassphrase}\n`);
    fs.writeFileSync(path.join(secretDir, 'sftp-passphrase'), `${secrets.sftpPassphrase}\n`);
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: secrets.keyPassphrase },
    });
    fs.writeFileSync(path.join(secretDir, 'signing.pem'), privateKey);
    // An OpenSSH key encrypted with the passphrase, so that the sftp transport reads and uses both.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', secrets.sftpPassphrase, '-C', '', '-f', path.join(secretDir, 'id_ed25519')]);

    // A source that is down (nothing listens on port 1), with its password inline and in a file.
    site.writeConfig({ database: `postgres://library:${secrets.inlineDbPassword}@127.0.0.1:1/library` });
    site.writeProfile('pg-inline.yaml', { id: 'pg-inline', schedule: '*/1 * * * * *' });
    site.writeProfile('pg-file.yaml', { id: 'pg-file', schedule: '*/1 * * * * *', database: `postgres://library@127.0.0.1:1/library?passwordFile=${path.join(secretDir, 'db-password')}` });
    site.writeProfile('signed.yaml', {
      id: 'signed',
      schedule: '*/1 * * * * *',
      database: small.url,
      rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'skip' } }],
      output: { signing: { method: 'xmldsig', privateKey: path.join(secretDir, 'signing.pem'), keyName: 'library-test', passphraseFile: path.join(secretDir, 'key-passphrase') } },
    });
    site.writeProfile('sftp.yaml', {
      id: 'sftp-out',
      schedule: '*/1 * * * * *',
      database: small.url,
      delivery: {
        transport: 'sftp',
        host: '127.0.0.1',
        port: 1,
        username: 'library',
        privateKey: path.join(secretDir, 'id_ed25519'),
        passphraseFile: path.join(secretDir, 'sftp-passphrase'),
        hostKeys: [`SHA256:${'A'.repeat(43)}`],
        remoteDir: '/inbox',
        retry: { attempts: 1, initialDelay: '100ms', maxDelay: '100ms' },
      },
    });
    fs.writeFileSync(path.join(site.profilesDir, 'broken.yaml'), 'id: broken\ncurrency: [USD\n');

    const daemon = await startReady(site, { JOURNAL_STREAM: '8:123456' });
    await daemon.waitFor(() => daemon.matching(/ profile=pg-file run=/).length >= 2 && daemon.matching(/ profile=signed run=/).length >= 2, 'runs of pg-file and signed', 8000);
    expect((await daemon.stop()).code).to.equal(0);

    const lines = daemon.lines.filter((line) => line !== '');
    expect(lines.length).to.be.greaterThan(10);
    for (const line of lines) expect(line, 'every line starts with its syslog priority').to.match(/^<[3467]>\S/);
    const priorities = new Set(lines.map((line) => line.slice(0, 3)));
    expect([...priorities].sort()).to.deep.equal(['<3>', '<4>', '<6>', '<7>']);
    expect(daemon.matching(/^<3>.*broken\.yaml:\d+:\d+: YAML syntax error/), 'an invalid profile at error, with its position').to.have.length(1);
    expect(daemon.matching(/^<3>scheduled run failed: .*SOURCE_CONNECT.* profile=pg-file run=pg-file-\d{8}T\d{6}Z code=SOURCE_CONNECT exit=3/).length).to.be.at.least(1);
    for (const line of daemon.matching(/export (started|built|delivered|failed)/)) expect(line).to.match(/ profile=[a-z0-9-]+ run=[a-z0-9-]+T\d{6}Z/);
    const output = daemon.output() + daemon.stdout;
    for (const [name, secret] of Object.entries(secrets)) expect(output.includes(secret), `${name} appears in the log`).to.equal(false);
    expect(output).to.not.contain('PRIVATE KEY');
  });

  describe('shutdown during a long export (200,000 users)', function () {
    this.timeout(120_000);
    let big: TestSource;
    before(async function () {
      big = await createSqliteSource();
      await seedDemo(big.knex, { users: 200_000, seed: 1, currency: 'USD', now: new Date(), dialect: 'sqlite' });
    });
    after(async () => {
      await big?.close();
    });

    function bigProfile(site: Site): void {
      site.writeProfile('big.yaml', {
        id: 'big',
        schedule: DAILY,
        database: big.url,
        rules: [{ rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'primary' } }, { rule: 'fine-age', with: { days: 0 } }],
      });
    }

    /** Starts the daemon with a missed daily run of `big`, and waits for that export to start. */
    async function startLongExport(site: Site): Promise<{ daemon: DaemonProcess; runId: string }> {
      const [previous, before] = dailyOccurrences();
      bigProfile(site);
      await recordDeliveredRun(site.stateDir, 'big', before);
      const daemon = startDaemon(['--config', site.configFile], site.env);
      const runId = `big-${compactTimestamp(previous)}`;
      await daemon.waitForLine(new RegExp(`export started profile=big run=${runId} `), { timeoutMs: 20_000 });
      return { daemon, runId };
    }

    it('a short grace cuts the run: recorded interrupted, no partial file under a final name, exit 0; the next start rebuilds it', async () => {
      const site = makeSite(small.url, { shutdownGrace: '200ms' });
      const { daemon, runId } = await startLongExport(site);
      await sleep(300);
      const exit = await daemon.stop('SIGTERM');
      expect(exit.code, daemon.output()).to.equal(0);
      expect(daemon.output()).to.match(/shutdownGrace is over: interrupting big/);
      expect(daemon.output()).to.match(new RegExp(`export interrupted by shutdown.* profile=big run=${runId}`));
      expect(await runState(site.stateDir, runId)).to.equal('interrupted');
      expect(site.inboxFiles(), 'nothing delivered, no temp file left').to.deep.equal([]);
      expect(filesBelow(path.join(site.stateDir, 'outbox')).filter((file) => file.includes(runId)), 'no partial file in the outbox').to.deep.equal([]);

      const again = startDaemon(['--config', site.configFile], site.env);
      await again.waitForLine(new RegExp(`rebuilding the interrupted run .* profile=big run=${runId}`), { timeoutMs: 20_000 });
      await again.waitForLine(new RegExp(`export delivered profile=big run=${runId} `), { timeoutMs: 60_000 });
      expect(again.matching(/was missed while the daemon was down/), 'the interrupted run counts as the scheduled run').to.deep.equal([]);
      expect((await again.stop()).code).to.equal(0);
      expect(site.inboxFiles()).to.deep.equal([`user-blocks-${runId}.xml`]);
      expect(await runState(site.stateDir, runId)).to.equal('delivered');
    });

    it('a long grace lets the run finish, then exits 0', async () => {
      const site = makeSite(small.url, { shutdownGrace: '60s' });
      const { daemon, runId } = await startLongExport(site);
      await sleep(200);
      const exit = await daemon.stop('SIGTERM', 90_000);
      expect(exit.code, daemon.output()).to.equal(0);
      const output = daemon.output();
      expect(output).to.match(/waiting up to 60 s \(shutdownGrace\) for big to finish/);
      expect(output.indexOf(`export delivered profile=big run=${runId}`)).to.be.within(0, output.indexOf(' stopped'));
      expect(site.inboxFiles()).to.deep.equal([`user-blocks-${runId}.xml`]);
      expect(await runState(site.stateDir, runId)).to.equal('delivered');
    });
  });
});
