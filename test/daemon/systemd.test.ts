import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Logger } from '../../daemon/logger';
import { packageRoot } from '../../daemon/paths';
import { createNotifier, formatNotifyMessage, parseNotifySocket, startWatchdog, watchdogIntervalMs } from '../../daemon/systemd';
import { NotifyListener } from '../helpers/notifySocket';
import { findTool } from '../helpers/xmllint';

const UNIT_DIR = path.join(packageRoot, 'systemd');
const UNITS = ['sis-block-export.service', 'sis-block-export-export@.service', 'sis-block-export-export@.timer'];
/** The score docs/service.md states; the test fails when the unit gets worse. */
const MAX_EXPOSURE = 2.5;

interface Logged {
  level: string;
  message: string;
}

function recordingLogger(into: Logged[]): Logger {
  const log = (level: string) => (message: string) => into.push({ level, message });
  const logger: Logger = { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug'), child: () => logger };
  return logger;
}

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('daemon/systemd', () => {
  describe('sd_notify protocol', () => {
    it('parses NOTIFY_SOCKET: an absolute path or @abstract; anything else is no socket', () => {
      expect(parseNotifySocket('/run/systemd/notify')).to.deep.equal({ kind: 'path', path: '/run/systemd/notify' });
      expect(parseNotifySocket('@sd-notify-1')).to.deep.equal({ kind: 'abstract', name: 'sd-notify-1' });
      for (const value of [undefined, '', '@', 'relative/path']) expect(parseNotifySocket(value), String(value)).to.equal(undefined);
    });

    it('watchdog: half of WATCHDOG_USEC, only for the process WATCHDOG_PID names (or any when unset)', () => {
      expect(watchdogIntervalMs({ WATCHDOG_USEC: '1000000' }, 42)).to.equal(500);
      expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42)).to.equal(30_000);
      expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '41' }, 42)).to.equal(undefined);
      expect(watchdogIntervalMs({}, 42)).to.equal(undefined);
      expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).to.equal(undefined);
      expect(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42)).to.equal(undefined);
    });

    it('formats KEY=VALUE lines; a value never spans lines', () => {
      expect(formatNotifyMessage({ READY: 1, STATUS: 'two\nlines' })).to.equal('READY=1\nSTATUS=two lines');
    });

    it('sends datagrams to a path socket; no socket means no messages and no errors', async () => {
      const listener = await NotifyListener.open();
      try {
        const logged: Logged[] = [];
        const notifier = createNotifier({ NOTIFY_SOCKET: listener.path }, { logger: recordingLogger(logged) });
        expect(notifier.enabled).to.equal(true);
        notifier.notify({ READY: 1, STATUS: 'ready' });
        notifier.notify({ STOPPING: 1 });
        await listener.waitFor('STOPPING=1');
        expect(listener.messages).to.deep.equal(['READY=1\nSTATUS=ready', 'STOPPING=1']);
        expect(logged).to.deep.equal([]);
        expect(createNotifier({}, { logger: recordingLogger(logged) }).enabled).to.equal(false);
      } finally {
        listener.close();
      }
    });

    it('a socket nobody listens on is reported once at warning, and the daemon goes on', () => {
      const logged: Logged[] = [];
      const notifier = createNotifier({ NOTIFY_SOCKET: path.join(os.tmpdir(), 'sbe-no-such-socket') }, { logger: recordingLogger(logged) });
      notifier.notify({ READY: 1 });
      notifier.notify({ WATCHDOG: 1 });
      expect(logged.map((entry) => entry.level)).to.deep.equal(['warn']);
      expect(logged[0]!.message).to.match(/^cannot notify the service manager at /);
    });

    it('pings the watchdog from the event loop while it runs', async () => {
      const listener = await NotifyListener.open();
      try {
        const notifier = createNotifier({ NOTIFY_SOCKET: listener.path }, { logger: recordingLogger([]) });
        const watchdog = startWatchdog(notifier, { WATCHDOG_USEC: '100000' }, 42);
        expect(watchdog.intervalMs).to.equal(50);
        await sleep(280);
        watchdog.stop();
        const count = listener.count('WATCHDOG=1');
        expect(count).to.be.within(4, 7);
        await sleep(150);
        expect(listener.count('WATCHDOG=1')).to.equal(count);
        expect(startWatchdog(notifier, { WATCHDOG_USEC: '100000', WATCHDOG_PID: '1' }, 42).intervalMs).to.equal(undefined);
      } finally {
        listener.close();
      }
    });

    it('an abstract socket (@name) is served by systemd-notify --pid=OURS, in order', async () => {
      const calls: string[][] = [];
      const notifier = createNotifier({ NOTIFY_SOCKET: '@sbe-test' }, {
        logger: recordingLogger([]),
        pid: 4242,
        runNotifyCommand: async (args, env) => {
          await sleep(args.includes('RELOADING=1') ? 30 : 0);
          calls.push([env.NOTIFY_SOCKET!, ...args]);
        },
      });
      notifier.notify({ RELOADING: 1 });
      notifier.notify({ READY: 1, STATUS: 'ok' });
      await notifier.flush();
      expect(calls).to.deep.equal([
        ['@sbe-test', '--pid=4242', '--no-block', 'RELOADING=1'],
        ['@sbe-test', '--pid=4242', '--no-block', 'READY=1', 'STATUS=ok'],
      ]);
    });

    it('an abstract socket for real (systemd-notify and socat, when installed)', async function () {
      if (!findTool('systemd-notify') || !findTool('socat')) this.skip();
      const name = `sbe-test-${process.pid}-${Date.now()}`;
      const receiver = spawn('socat', ['-u', `ABSTRACT-RECV:${name}`, '-']);
      let received = '';
      receiver.stdout.on('data', (chunk: Buffer) => (received += chunk.toString()));
      try {
        await sleep(300);
        const notifier = createNotifier({ NOTIFY_SOCKET: `@${name}`, PATH: process.env.PATH }, { logger: recordingLogger([]) });
        notifier.notify({ READY: 1, STATUS: 'abstract works' });
        await notifier.flush();
        await sleep(200);
        expect(received).to.contain('READY=1').and.contain('STATUS=abstract works').and.contain(`MAINPID=${process.pid}`);
      } finally {
        receiver.kill();
      }
    });
  });

  describe('units in systemd/ (systemd-analyze)', function () {
    this.timeout(120_000);
    let root: string;
    before(function () {
      if (!findTool('systemd-analyze')) {
        console.log('      systemd-analyze is not installed (apt-get install systemd): skipping the unit checks');
        this.skip();
      }
      // An alternative root with the units unchanged, the binaries they name and the system
      // units they depend on: verify checks ExecStart= paths and dependencies inside it.
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-units-'));
      const unitDir = path.join(root, 'etc', 'systemd', 'system');
      fs.mkdirSync(unitDir, { recursive: true });
      for (const unit of UNITS) fs.copyFileSync(path.join(UNIT_DIR, unit), path.join(unitDir, unit));
      fs.mkdirSync(path.join(root, 'usr', 'bin'), { recursive: true });
      fs.writeFileSync(path.join(root, 'usr', 'bin', 'sis-block-export'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      fs.mkdirSync(path.join(root, 'bin'));
      fs.copyFileSync('/bin/kill', path.join(root, 'bin', 'kill'));
      fs.chmodSync(path.join(root, 'bin', 'kill'), 0o755);
      const systemUnits = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((dir) => fs.existsSync(path.join(dir, 'multi-user.target')));
      if (systemUnits) fs.cpSync(systemUnits, path.join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true, verbatimSymlinks: true });
    });
    after(() => {
      if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    it('the units name the documented paths', () => {
      const service = fs.readFileSync(path.join(UNIT_DIR, 'sis-block-export.service'), 'utf8');
      for (const line of [
        'Type=notify',
        'NotifyAccess=main',
        'ExecStart=/usr/bin/sis-block-export run',
        'ExecReload=/bin/kill -HUP $MAINPID',
        'User=sis-block-export',
        'StateDirectory=sis-block-export',
        'ConfigurationDirectory=sis-block-export',
        'LogsDirectory=sis-block-export',
        'ProtectSystem=strict',
        'CapabilityBoundingSet=',
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
        'SystemCallFilter=@system-service',
      ]) {
        expect(service.split('\n'), line).to.include(line);
      }
      expect(service).to.match(/^WatchdogSec=\d+s$/m);
      expect(service, 'V8 cannot run under it').to.not.match(/^MemoryDenyWriteExecute=/m);
      const oneShot = fs.readFileSync(path.join(UNIT_DIR, 'sis-block-export-export@.service'), 'utf8');
      expect(oneShot.split('\n')).to.include('ExecStart=/usr/bin/sis-block-export export --profile %i');
    });

    it('systemd-analyze verify accepts them, without a warning', async () => {
      const result = await run('systemd-analyze', ['verify', `--root=${root}`, 'sis-block-export.service', 'sis-block-export-export@main-campus.service', 'sis-block-export-export@main-campus.timer']);
      expect(result, 'exit 0 and nothing printed').to.deep.equal({ code: 0, stdout: '', stderr: '' });
    });

    it(`systemd-analyze security --offline=true rates each service at ${MAX_EXPOSURE} or below`, async () => {
      for (const unit of ['sis-block-export.service', 'sis-block-export-export@main-campus.service']) {
        const result = await run('systemd-analyze', ['security', '--offline=true', `--root=${root}`, '--no-pager', unit]);
        const score = /Overall exposure level for \S+: (\d+\.\d+)/.exec(result.stdout)?.[1];
        expect(score, `${unit}: ${result.stdout}${result.stderr}`).to.be.a('string');
        expect(Number(score), unit).to.be.at.most(MAX_EXPOSURE);
      }
    });
  });
});
