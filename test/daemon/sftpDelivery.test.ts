import { spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { seedDemo } from '../../daemon/seed';
import { BIN, runCli } from '../helpers/cli';
import { freePort, startSshd, sshdUnavailable, type Sshd } from '../helpers/sshd';
import { createSqliteSource, type TestSource } from '../helpers/sourceDb';
import { startTcpProxy, type TcpProxy } from '../helpers/tcpProxy';
import { xmllintValidate } from '../helpers/xmllint';

/** Export runs end to end through the real sshd: crash safety and supersession (issue 3). */
describe('export delivered over SFTP (SPEC 7, 8)', function () {
  this.timeout(120_000);
  let sshd: Sshd;
  let source: TestSource;
  let proxy: TcpProxy | undefined;

  before(async function () {
    const why = sshdUnavailable();
    if (why) {
      console.log(`    (skipped: ${why})`);
      return this.skip();
    }
    sshd = await startSshd();
    source = await createSqliteSource();
    // Large enough that the upload is still under way when the process is killed.
    await seedDemo(source.knex, { users: 30_000, seed: 3, currency: 'USD', now: new Date('2026-11-20T00:00:00Z'), dialect: 'sqlite' });
  });
  after(async () => {
    await proxy?.stop();
    await source?.close();
    await sshd?.stop();
  });
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
    for (const name of fs.readdirSync(sshd.inbox)) fs.rmSync(path.join(sshd.inbox, name), { force: true });
  });

  function profile(name: string, port: number, extra: Record<string, unknown> = {}): string {
    const file = path.join(source.dir, `${name}.yaml`);
    fs.writeFileSync(file, stringify({
      id: name,
      currency: 'USD',
      database: source.url,
      rules: [{ rule: 'fine-age', with: { days: 0 } }],
      delivery: {
        transport: 'sftp',
        host: '127.0.0.1',
        port,
        username: sshd.user,
        privateKey: sshd.clientKey.privateKey,
        hostKeys: [sshd.hostKeys.ed25519.fingerprint],
        remoteDir: sshd.inbox,
        connectTimeout: '5s',
        operationTimeout: '5s',
        retry: { attempts: 1, initialDelay: '100ms', maxDelay: '100ms' },
        ...extra,
      },
    }));
    return file;
  }

  it('an export killed with SIGKILL mid-upload leaves no final file; the next run delivers one complete file', async () => {
    const state = path.join(source.dir, 'state-kill');
    // The first connection stalls after 2 MB: the upload hangs there until the process dies.
    proxy = await startTcpProxy({ host: '127.0.0.1', port: sshd.port }, { afterBytes: 2_000_000, mode: 'stall' });
    const file = profile('killed', proxy.port);
    const child = spawn(BIN, ['export', '--profile', file, '--now', '2026-12-04T02:00:00Z'], {
      env: { PATH: process.env.PATH, SIS_BLOCK_EXPORT_STATE_DIR: state, SIS_BLOCK_EXPORT_CONFIG: '/nonexistent/config.yaml' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let childLog = '';
    child.stderr!.on('data', (chunk: Buffer) => (childLog += chunk.toString()));
    const partial = path.join(sshd.inbox, '.user-blocks-killed-20261204T020000Z.xml.part');
    for (let i = 0; i < 1200 && !(fs.existsSync(partial) && fs.statSync(partial).size > 0); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fs.existsSync(partial), `the upload started: ${childLog}`).to.equal(true);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    expect(fs.readdirSync(sshd.inbox).filter((name) => !name.startsWith('.'))).to.deep.equal([]);

    const again = await runCli(['export', '--profile', file, '--now', '2026-12-04T03:00:00Z'], { SIS_BLOCK_EXPORT_STATE_DIR: state });
    expect(again.code, again.stderr).to.equal(0);
    // The killed run's hidden temp file stays behind (never renamed); no other name appears.
    expect(fs.readdirSync(sshd.inbox).filter((name) => !name.startsWith('.'))).to.deep.equal(['user-blocks-killed-20261204T030000Z.xml']);
    expect(fs.existsSync(path.join(sshd.inbox, '.user-blocks-killed-20261204T030000Z.xml.part'))).to.equal(false);
    const delivered = path.join(sshd.inbox, 'user-blocks-killed-20261204T030000Z.xml');
    expect(fs.readFileSync(delivered, 'utf8').trimEnd().endsWith('</userBlocksExport>')).to.equal(true);
    expect((await xmllintValidate(delivered)).ok).to.equal(true);
    const status = JSON.parse((await runCli(['status', '--json'], { SIS_BLOCK_EXPORT_STATE_DIR: state })).stdout) as Record<string, { runId: string; state: string }[]>;
    // The killed run never recorded its end: it stays "delivering" until superseded by the next snapshot.
    expect(status.killed!.map((run) => [run.runId, run.state])).to.deep.equal([
      ['killed-20261204T030000Z', 'delivered'],
      ['killed-20261204T020000Z', 'superseded'],
    ]);
  });

  it('an older run whose delivery failed never reaches the inbox after a newer one; status shows it superseded', async () => {
    const state = path.join(source.dir, 'state-supersede');
    const env = { SIS_BLOCK_EXPORT_STATE_DIR: state };
    // Every connection is cut after 64 KB: the first run fails (exit 4) and keeps its export.
    proxy = await startTcpProxy({ host: '127.0.0.1', port: sshd.port }, { afterBytes: 64_000, mode: 'reset', faultyConnections: 1000 });
    const failing = await runCli(['export', '--profile', profile('pair', proxy.port), '--now', '2026-12-04T02:00:00Z'], env);
    expect(failing.code, failing.stderr).to.equal(4);
    expect(fs.readdirSync(sshd.inbox).filter((name) => !name.startsWith('.'))).to.deep.equal([]);

    const direct = await runCli(['export', '--profile', profile('pair', sshd.port), '--now', '2026-12-05T02:00:00Z'], env);
    expect(direct.code, direct.stderr).to.equal(0);
    // The older run's hidden temp file may stay behind; it is never renamed to a final name.
    expect(fs.readdirSync(sshd.inbox).filter((name) => !name.startsWith('.'))).to.deep.equal(['user-blocks-pair-20261205T020000Z.xml']);
    const status = await runCli(['status', '--profile', 'pair'], env);
    expect(status.stdout).to.match(/pair-20261205T020000Z\s+delivered/);
    expect(status.stdout).to.match(/pair-20261204T020000Z\s+superseded .*superseded by pair-20261205T020000Z/);
  });

  it('a link cut twice mid-transfer, then let through: retried, the file arrives once and complete, no .part remains', async () => {
    const state = path.join(source.dir, 'state-cut');
    proxy = await startTcpProxy({ host: '127.0.0.1', port: sshd.port }, { afterBytes: 300_000, mode: 'reset', faultyConnections: 2 });
    const file = profile('cut', proxy.port, { retry: { attempts: 5, initialDelay: '200ms', maxDelay: '1s' } });
    const result = await runCli(['export', '--profile', file, '--now', '2026-12-04T02:00:00Z'], { SIS_BLOCK_EXPORT_STATE_DIR: state });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr.match(/attempt \d of 5 failed, retrying/g)).to.have.length(2);
    expect(proxy.faults).to.equal(2);
    expect(fs.readdirSync(sshd.inbox)).to.deep.equal(['user-blocks-cut-20261204T020000Z.xml']);
    const outboxed = path.join(state, 'outbox', 'cut-20261204T020000Z', 'user-blocks-cut-20261204T020000Z.xml');
    expect(fs.readFileSync(path.join(sshd.inbox, 'user-blocks-cut-20261204T020000Z.xml')).equals(fs.readFileSync(outboxed))).to.equal(true);
    const status = JSON.parse((await runCli(['status', '--json'], { SIS_BLOCK_EXPORT_STATE_DIR: state })).stdout) as Record<string, { state: string; attempts: number }[]>;
    expect(status.cut![0]).to.include({ state: 'delivered', attempts: 3 });
  });

  it('a server that is down at the start and up two seconds later: delivered within the retry budget', async () => {
    const state = path.join(source.dir, 'state-late');
    const port = await freePort();
    const file = profile('late', port, { retry: { attempts: 10, initialDelay: '500ms', maxDelay: '1s' } });
    let late: net.Server | undefined;
    const timer = setTimeout(() => {
      late = net.createServer((client) => {
        const upstream = net.connect(sshd.port, '127.0.0.1');
        client.on('error', () => undefined);
        upstream.on('error', () => undefined);
        client.pipe(upstream).pipe(client);
      }).listen(port, '127.0.0.1');
    }, 2_000);
    try {
      const started = Date.now();
      const result = await runCli(['export', '--profile', file, '--now', '2026-12-04T02:00:00Z'], { SIS_BLOCK_EXPORT_STATE_DIR: state });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr).to.match(/attempt 1 of 10 failed, retrying in .*ECONNREFUSED/);
      expect(Date.now() - started).to.be.above(1_500);
      expect(fs.readdirSync(sshd.inbox)).to.deep.equal(['user-blocks-late-20261204T020000Z.xml']);
    } finally {
      clearTimeout(timer);
      await new Promise((resolve) => (late ? late.close(resolve) : resolve(undefined)));
    }
  });
});
