import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Ledger } from '../../daemon/ledger';

describe('daemon/ledger', () => {
  let dir: string;
  let ledger: Ledger;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-ledger-'));
    ledger = await Ledger.open(dir);
  });
  afterEach(async () => {
    await ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const at = new Date('2026-12-04T02:00:00.250Z');
  const built = (name: string) => ({ files: [{ name, localPath: `/outbox/${name}`, size: 10 }], sha256: 'a'.repeat(64), users: 3, blocks: 1 });

  it('claims unique, sortable run ids with -2, -3 suffixes', async () => {
    expect(await ledger.claimRun('main', at, true)).to.equal('main-20261204T020000Z');
    expect(await ledger.claimRun('main', at, false)).to.equal('main-20261204T020000Z-2');
    expect(await ledger.claimRun('main', at, false)).to.equal('main-20261204T020000Z-3');
    expect(await ledger.claimRun('other', at, false)).to.equal('other-20261204T020000Z');
    const run = await ledger.get('main-20261204T020000Z');
    expect(run).to.include({ profileId: 'main', state: 'building', scheduled: true, attempts: 0 });
    expect(run!.runTime.toISOString()).to.equal('2026-12-04T02:00:00.250Z');
  });

  it('lives in ledger.db in the state directory and survives a reopen', async () => {
    await ledger.claimRun('main', at, true);
    await ledger.close();
    expect(fs.existsSync(path.join(dir, 'ledger.db'))).to.equal(true);
    ledger = await Ledger.open(dir);
    expect((await ledger.lastScheduledRunTime('main'))!.toISOString()).to.equal(at.toISOString());
    expect(await ledger.lastScheduledRunTime('nope')).to.equal(undefined);
  });

  it('supersedes older undelivered snapshots, never newer or delivered ones', async () => {
    const older = await ledger.claimRun('main', new Date('2026-12-01T02:00:00Z'), true);
    await ledger.markBuilt(older, built('a.xml'));
    await ledger.markFailed(older, new Error('connection refused'));
    const delivered = await ledger.claimRun('main', new Date('2026-11-30T02:00:00Z'), true);
    await ledger.markBuilt(delivered, built('b.xml'));
    await ledger.markDelivered(delivered);
    const newer = await ledger.claimRun('main', new Date('2026-12-02T02:00:00Z'), true);
    await ledger.markBuilt(newer, built('c.xml'));
    const newest = await ledger.claimRun('main', new Date('2026-12-03T02:00:00Z'), true);

    expect((await ledger.pendingDelivery('main'))!.runId).to.equal(newer);
    expect(await ledger.supersedeOlder('main', newer)).to.deep.equal([older]);
    expect((await ledger.get(older))!.state).to.equal('superseded');
    expect((await ledger.get(older))!.lastError).to.equal(`superseded by ${newer}`);
    expect((await ledger.get(delivered))!.state).to.equal('delivered');
    expect((await ledger.get(newest))!.state).to.equal('building');
  });

  it('records attempts, errors and delivery', async () => {
    const runId = await ledger.claimRun('main', at, false);
    await ledger.markBuilt(runId, built('x.xml'));
    await ledger.markDelivering(runId);
    await ledger.markFailed(runId, new Error('reset'));
    await ledger.markDelivering(runId);
    await ledger.markDelivered(runId);
    const run = (await ledger.get(runId))!;
    expect(run).to.include({ state: 'delivered', attempts: 2, lastError: null, fileName: 'x.xml', size: 10, users: 3 });
    expect(run.deliveredAt).to.be.instanceOf(Date);
    expect(run.files).to.deep.equal([{ name: 'x.xml', localPath: '/outbox/x.xml', size: 10 }]);
  });
});
