import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Ledger } from '../../daemon/ledger';
import { packageRoot } from '../../daemon/paths';
import { SERVERS, createDialectSource, type DialectSource } from '../helpers/dialectDb';

/** A ledger in a shared database, as two daemons on two hosts use it (issue 6). */
describe('shared ledger: claims and profile locks', function () {
  this.timeout(60_000);

  for (const { dialect, url } of SERVERS) {
    describe(dialect, () => {
      let database: DialectSource;
      let stateDir: string;
      let first: Ledger;
      let second: Ledger;
      before(async function () {
        if (!url) return this.skip();
        database = await createDialectSource(dialect, 'sbe_ledger', { migrate: false });
        stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-ledger-'));
        first = await Ledger.open(stateDir, { url: database.url });
        second = await Ledger.open(stateDir, { url: database.url });
      });
      after(async () => {
        await first?.close();
        await second?.close();
        await database?.drop();
        if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
      });

      it('one instance claims a scheduled tick; the other is told it is taken', async () => {
        const tick = new Date('2026-12-04T02:00:00Z');
        expect(await first.claimScheduledTick('main', tick)).to.equal(true);
        expect(await second.claimScheduledTick('main', tick)).to.equal(false);
        expect(await second.claimScheduledTick('main', new Date('2026-12-05T02:00:00Z'))).to.equal(true);
      });

      it('a profile lock is held by one instance at a time', async () => {
        let inner: { value: string } | undefined;
        const outer = await first.withProfileLock('main', async () => {
          inner = await second.withProfileLock('main', async () => 'second ran');
          expect(await second.withProfileLock('other', async () => 'other profile')).to.deep.equal({ value: 'other profile' });
          return 'first ran';
        });
        expect(outer).to.deep.equal({ value: 'first ran' });
        expect(inner).to.equal(undefined);
        expect(await second.withProfileLock('main', async () => 'now free')).to.deep.equal({ value: 'now free' });
      });

      it('run ids and states work as on SQLite', async () => {
        const at = new Date('2026-12-04T02:00:00Z');
        expect(await first.claimRun('main', at, true)).to.equal('main-20261204T020000Z');
        expect(await second.claimRun('main', at, false)).to.equal('main-20261204T020000Z-2');
        await first.markBuilt('main-20261204T020000Z', { files: [{ name: 'a.xml', localPath: '/x/a.xml', size: 1 }], sha256: 'f'.repeat(64), users: 1, blocks: 0 });
        expect((await second.pendingDelivery('main'))!.runId).to.equal('main-20261204T020000Z');
        expect((await second.lastScheduledRunTime('main'))!.toISOString()).to.equal(at.toISOString());
      });

      it('when the holder dies, the lock is released and the other instance takes over', async () => {
        const script = [
          `const { Ledger } = require(${JSON.stringify(path.join(packageRoot, 'dist', 'daemon', 'ledger.js'))});`,
          `Ledger.open(${JSON.stringify(stateDir)}, { url: ${JSON.stringify(database.url)} }).then((ledger) =>`,
          `  ledger.withProfileLock('crashy', () => { process.stdout.write('locked\\n'); return new Promise(() => {}); }));`,
        ].join('\n');
        const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve());
          child.on('exit', (code) => reject(new Error(`child exited ${code} before locking`)));
        });
        expect(await first.withProfileLock('crashy', async () => 'taken')).to.equal(undefined);
        child.kill('SIGKILL');
        await new Promise((resolve) => child.on('exit', resolve));
        let result: { value: string } | undefined;
        for (let i = 0; i < 50 && !result; i++) {
          result = await first.withProfileLock('crashy', async () => 'taken over');
          if (!result) await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(result).to.deep.equal({ value: 'taken over' });
      });
    });
  }
});
