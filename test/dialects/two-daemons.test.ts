import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { Ledger } from '../../daemon/ledger';
import { seedDemo } from '../../daemon/seed';
import { killAllDaemons, startDaemon, type DaemonProcess } from '../helpers/daemonProcess';
import { createDialectSource, type DialectSource } from '../helpers/dialectDb';
import { createSqliteSource, type TestSource } from '../helpers/sourceDb';
import { xmllintValidate } from '../helpers/xmllint';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An active/passive pair: two daemons with their own state directories on one PostgreSQL
 * ledger, the same profile on a seconds schedule, delivering into one inbox (issue 6).
 */
describe('two daemons on one PostgreSQL ledger', function () {
  this.timeout(120_000);
  let ledgerDb: DialectSource;
  let source: TestSource;
  let work: string;
  let inbox: string;

  before(async function () {
    if (!process.env.PG_URL) return this.skip();
    ledgerDb = await createDialectSource('pg', 'sbe_pair', { migrate: false });
    source = await createSqliteSource();
    // Big enough that a run takes a noticeable moment, so one can be killed mid-run.
    await seedDemo(source.knex, { users: 20_000, seed: 11, currency: 'USD', now: new Date('2026-11-20T00:00:00Z'), dialect: 'sqlite' });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-pair-'));
    inbox = path.join(work, 'inbox');
    fs.mkdirSync(inbox);
  });
  after(async () => {
    await killAllDaemons();
    await source?.close();
    await ledgerDb?.drop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  function host(name: string): { configFile: string; stateDir: string } {
    const dir = path.join(work, name);
    fs.mkdirSync(path.join(dir, 'profiles.d'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'profiles.d', 'pair.yaml'), stringify({
      id: 'pair',
      schedule: '*/2 * * * * *',
      currency: 'USD',
      rules: [{ rule: 'fine-age', with: { days: 0 } }],
      delivery: { transport: 'local', directory: inbox },
    }));
    const configFile = path.join(dir, 'config.yaml');
    fs.writeFileSync(configFile, stringify({ profilesDir: 'profiles.d', stateDir: 'state', database: source.url, ledger: ledgerDb.url, shutdownGrace: '5s' }));
    return { configFile, stateDir: path.join(dir, 'state') };
  }

  async function start(name: string): Promise<DaemonProcess> {
    const { configFile, stateDir } = host(name);
    const daemon = startDaemon(['--config', configFile], { SIS_BLOCK_EXPORT_STATE_DIR: stateDir });
    await daemon.waitForLine(/ready: \d+ profile/);
    return daemon;
  }

  const exports = () => fs.readdirSync(inbox).filter((name) => name.endsWith('.xml')).sort();

  it('delivers each scheduled run exactly once; when one instance is killed the other takes over', async () => {
    const a = await start('host-a');
    const b = await start('host-b');
    await sleep(9_000);
    const before = exports();
    expect(before.length, `files: ${before.join(', ')}`).to.be.at.least(3);
    // One file per tick: a tick built twice would have a "-2" run id.
    expect(before.filter((name) => /Z-\d+\.xml$/.test(name))).to.deep.equal([]);
    const claimedBy = (daemon: DaemonProcess) => daemon.matching(/already claimed by another instance|skipped: another run of this profile is in progress/).length;
    expect(claimedBy(a) + claimedBy(b), `the other instance saw the ticks taken:\n${a.output()}\n${b.output()}`).to.be.at.least(before.length - 1);

    // Kill A while it may be in the middle of a run; B goes on alone.
    a.signal('SIGKILL');
    await a.exited;
    const killedAt = Date.now();
    await sleep(7_000);
    await b.stop('SIGTERM');
    const after = exports();
    const later = after.filter((name) => !before.includes(name));
    expect(later.length, `files after the kill: ${later.join(', ')}`).to.be.at.least(2);
    expect(after.filter((name) => /Z-\d+\.xml$/.test(name))).to.deep.equal([]);
    expect(fs.readdirSync(inbox).filter((name) => name.startsWith('.'))).to.deep.equal([]);
    for (const name of after) {
      const check = await xmllintValidate(path.join(inbox, name));
      expect(check.ok, `${name}: ${check.output}`).to.equal(true);
    }

    // The ledger agrees: each delivered run once, no tick claimed twice.
    const ledger = await Ledger.open(work, { url: ledgerDb.url });
    try {
      const runs = await ledger.recentRuns({ profileId: 'pair', limit: 1000 });
      const delivered = runs.filter((run) => run.state === 'delivered').map((run) => `user-blocks-${run.runId}.xml`).sort();
      expect(delivered).to.deep.equal(after);
      const runTimes = runs.map((run) => run.runTime.toISOString());
      expect(new Set(runTimes).size, 'one run per tick').to.equal(runTimes.length);
      expect(runs.every((run) => run.scheduled)).to.equal(true);
      expect(killedAt).to.be.a('number');
    } finally {
      await ledger.close();
    }
  });
});
