import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import type { Logger } from '../../daemon/logger';
import { ProfileWatcher } from '../../daemon/profileWatcher';
import type { Profile } from '../../daemon/profiles';
import { builtinRegistry } from '../../daemon/registry';

interface Logged {
  level: string;
  message: string;
}

function recordingLogger(into: Logged[]): Logger {
  const log = (level: string) => (message: string) => into.push({ level, message });
  const logger: Logger = { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug'), child: () => logger };
  return logger;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Short times so that the tests are quick: the daemon uses 300 ms / 1 s / 2 s. */
const TIMING = { stableMs: 80, settleMs: 250, rescanMs: 150, debounceMs: 20 };

describe('daemon/profileWatcher', function () {
  this.timeout(20_000);
  let dir: string;
  let logged: Logged[];
  let changes: Map<string, Profile>[];
  let watcher: ProfileWatcher | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-watch-'));
    logged = [];
    changes = [];
  });
  afterEach(() => {
    watcher?.stop();
    watcher = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function profileText(id: string, extra: Record<string, unknown> = {}): string {
    return stringify({ id, currency: 'USD', delivery: { transport: 'local', directory: '/srv/inbox' }, ...extra });
  }

  /** Writes a file and backdates it, as if it had been there for a while. */
  function writeOld(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(file, past, past);
    return file;
  }

  async function start(): Promise<ProfileWatcher> {
    watcher = new ProfileWatcher({ dir, registry: builtinRegistry, logger: recordingLogger(logged), onChange: (profiles) => changes.push(new Map(profiles)), ...TIMING });
    await watcher.start();
    return watcher;
  }

  async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${logged.map((l) => `${l.level} ${l.message}`).join('\n')}`);
      await sleep(20);
    }
  }

  const ids = (w: ProfileWatcher) => [...w.profiles.keys()].sort();
  const errors = () => logged.filter((entry) => entry.level === 'error').map((entry) => entry.message);

  it('loads the profile files present at start, and only those: editor files are ignored', async () => {
    writeOld('main.yaml', profileText('main'));
    writeOld('other.yml', profileText('other'));
    for (const name of ['.main.yaml.swp', 'main.yaml~', '.#main.yaml', '4913', 'README.txt', '.hidden.yaml', 'main.yaml.bak']) writeOld(name, 'id: [broken\n');
    fs.mkdirSync(path.join(dir, 'sub.yaml'));
    const w = await start();
    expect(ids(w)).to.deep.equal(['main', 'other']);
    expect(changes).to.have.length(1);
    expect(errors()).to.deep.equal([]);
  });

  it('waits until a new file has settled before reading it', async () => {
    const w = await start();
    const text = profileText('late');
    const file = path.join(dir, 'late.yaml');
    fs.writeFileSync(file, text.slice(0, 20));
    await sleep(150);
    expect(ids(w), 'not read while it may still be written').to.deep.equal([]);
    fs.appendFileSync(file, text.slice(20));
    await until(() => w.profiles.has('late'), 'the completed file to load');
    expect(errors()).to.deep.equal([]);
  });

  it('keeps the last valid version when a change is invalid, and reports file, line and column once', async () => {
    const file = writeOld('main.yaml', profileText('main', { description: 'first' }));
    const w = await start();
    const first = w.profiles.get('main')!;
    fs.writeFileSync(file, 'id: main\ncurrency: USD\nrules:\n  - rule: no-such-rule\ndelivery: { transport: local, directory: /srv }\n');
    await until(() => errors().length > 0, 'the error');
    await sleep(400);
    expect(errors()).to.have.length(1);
    expect(errors()[0]).to.contain(`${file}:4:`).and.contain('unknown rule "no-such-rule"').and.contain('the last valid version of profile main stays in effect');
    expect(w.profiles.get('main')).to.equal(first);
    fs.writeFileSync(file, profileText('main', { description: 'fixed' }));
    await until(() => w.profiles.get('main')?.description === 'fixed', 'the fixed version');
  });

  it('drops a removed file, but not one that an editor replaces by renaming', async () => {
    const file = writeOld('main.yaml', profileText('main'));
    writeOld('gone.yaml', profileText('gone'));
    const w = await start();
    expect(ids(w)).to.deep.equal(['gone', 'main']);
    // Save by rename: the file is missing for a moment.
    const temp = path.join(dir, '.main.yaml.tmp');
    fs.writeFileSync(temp, profileText('main', { description: 'saved' }));
    fs.rmSync(file);
    await sleep(30);
    fs.renameSync(temp, file);
    fs.rmSync(path.join(dir, 'gone.yaml'));
    await until(() => !w.profiles.has('gone'), 'gone to be dropped');
    await until(() => w.profiles.get('main')?.description === 'saved', 'the saved version');
    expect(changes.every((profiles) => profiles.has('main')), 'main was never dropped').to.equal(true);
  });

  it('gives a duplicate id to the first file in name order, logs both names, and hands it over when that file goes', async () => {
    const second = writeOld('b.yaml', profileText('same', { description: 'from b' }));
    const first = writeOld('a.yaml', profileText('same', { description: 'from a' }));
    const w = await start();
    expect(w.profiles.get('same')!.description).to.equal('from a');
    expect(errors()).to.have.length(1);
    expect(errors()[0]).to.contain(second).and.contain(first).and.contain('already used by');
    fs.rmSync(first);
    await until(() => w.profiles.get('same')?.description === 'from b', 'b to take over');
  });

  it('reload() reads every file again, from a new directory', async () => {
    writeOld('main.yaml', profileText('main'));
    const w = await start();
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-watch-other-'));
    try {
      fs.writeFileSync(path.join(other, 'x.yaml'), profileText('x'));
      const past = new Date(Date.now() - 60_000);
      fs.utimesSync(path.join(other, 'x.yaml'), past, past);
      await w.reload({ dir: other, registry: builtinRegistry });
      expect(ids(w)).to.deep.equal(['x']);
    } finally {
      w.stop();
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('a missing directory is logged once and picked up when it appears', async () => {
    fs.rmSync(dir, { recursive: true });
    const w = await start();
    expect(ids(w)).to.deep.equal([]);
    fs.mkdirSync(dir);
    writeOld('main.yaml', profileText('main'));
    await until(() => w.profiles.has('main'), 'the profile in the new directory');
    expect(logged.filter((entry) => entry.level === 'warn' && entry.message.includes('does not exist'))).to.have.length(1);
  });
});
