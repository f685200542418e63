/**
 * A real OpenSSH server for the sftp transport tests: `/usr/sbin/sshd -D -e` on a free
 * 127.0.0.1 port with its own config, fresh host keys (ed25519 and rsa), `internal-sftp`,
 * and one unprivileged user (`sbe-sftp-test`) whose inbox is a temp directory it owns. It
 * needs root (sshd must switch to the user; and root ignores file modes, so the "inbox not
 * writable" case needs a real user). `stop()` kills sshd and removes everything; a process
 * exit kills any sshd still running.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findTool } from './xmllint';

const run = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';
export const TEST_USER = 'sbe-sftp-test';
const PRIVSEP_DIR = '/run/sshd';
const INSTALL_HINT = 'install OpenSSH with: apt-get update && apt-get install -y openssh-server openssh-client';

export interface KeyPair {
  /** Path of the private key (OpenSSH format). */
  privateKey: string;
  /** The `.pub` line: `TYPE BASE64 COMMENT`. */
  publicLine: string;
  /** `SHA256:...` as `ssh-keygen -l` prints it. */
  fingerprint: string;
  type: string;
}

export interface Sshd {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Temp directory holding the config, keys and the inbox. */
  readonly dir: string;
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
  /** Absolute path of the user's inbox (the same path locally and on the server). */
  readonly inbox: string;
  readonly hostKeys: { ed25519: KeyPair; rsa: KeyPair };
  /** Authorized client key, no passphrase. */
  readonly clientKey: KeyPair;
  /** Authorized client key protected by `clientPassphrase`. */
  readonly encryptedClientKey: KeyPair;
  readonly clientPassphrase: string;
  /** A key the server does not know. */
  readonly strangerKey: KeyPair;
  /** Adds a public key line (`TYPE BASE64 [COMMENT]`) to the authorized keys; sshd reads them at each login. */
  authorize(publicLine: string): void;
  /** A known_hosts line for this server: `[127.0.0.1]:PORT TYPE KEY`. */
  knownHostsLine(type: 'ed25519' | 'rsa', hostField?: string): string;
  /** What sshd wrote to stderr (for assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Why sshd tests cannot run here, or undefined when they can. */
export function sshdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the sshd tests need root (sshd switches to a test user)';
  if (!fs.existsSync(SSHD)) return `${SSHD} is missing; ${INSTALL_HINT}`;
  if (!findTool('ssh-keygen')) return `ssh-keygen is missing; ${INSTALL_HINT}`;
  return undefined;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function generateKey(file: string, type: 'ed25519' | 'rsa', passphrase = ''): Promise<KeyPair> {
  const args = ['-q', '-t', type, '-N', passphrase, '-C', path.basename(file), '-f', file];
  if (type === 'rsa') args.push('-b', '2048');
  await run('ssh-keygen', args);
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`]);
  const fingerprint = /SHA256:[A-Za-z0-9+/]+/.exec(stdout)?.[0];
  if (!fingerprint) throw new Error(`ssh-keygen -l printed no SHA256 fingerprint: ${stdout}`);
  const publicLine = fs.readFileSync(`${file}.pub`, 'utf8').trim();
  return { privateKey: file, publicLine, fingerprint, type: publicLine.split(' ')[0]! };
}

/** The test user, created when missing, with a usable (not locked) account. */
async function ensureTestUser(): Promise<{ uid: number; gid: number }> {
  try {
    await run('id', ['-u', TEST_USER]);
  } catch {
    await run('useradd', ['--system', '--create-home', '--shell', '/bin/sh', TEST_USER]);
  }
  // useradd leaves the password "!" (locked); sshd without PAM refuses locked accounts even for
  // public keys. "*" means "no password" without locking.
  await run('usermod', ['-p', '*', TEST_USER]);
  const uid = Number((await run('id', ['-u', TEST_USER])).stdout.trim());
  const gid = Number((await run('id', ['-g', TEST_USER])).stdout.trim());
  return { uid, gid };
}

/** Resolves once `port` answers with an SSH banner; rejects when `child` exits first or after `timeoutMs`. */
async function waitForBanner(port: number, child: ChildProcess, log: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`sshd exited (${child.exitCode ?? child.signalCode}) before listening:\n${log()}`);
    const banner = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('data', (data: Buffer) => done(data.toString('latin1').startsWith('SSH-')));
      socket.once('error', () => done(false));
    });
    if (banner) return;
    if (Date.now() > deadline) throw new Error(`sshd did not accept connections on 127.0.0.1:${port} within ${timeoutMs} ms:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function killAndWait(child: ChildProcess, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startSshd(): Promise<Sshd> {
  const unavailable = sshdUnavailable();
  if (unavailable) throw new Error(unavailable);
  const { uid, gid } = await ensureTestUser();
  fs.mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-sshd-'));
  let child: ChildProcess | undefined;
  try {
    // The user must reach the inbox and read authorized_keys through this directory.
    fs.chmodSync(dir, 0o755);
    const inbox = path.join(dir, 'inbox');
    fs.mkdirSync(inbox, { mode: 0o755 });
    fs.chownSync(inbox, uid, gid);

    const [ed25519, rsa, clientKey, encryptedClientKey, strangerKey] = await Promise.all([
      generateKey(path.join(dir, 'ssh_host_ed25519_key'), 'ed25519'),
      generateKey(path.join(dir, 'ssh_host_rsa_key'), 'rsa'),
      generateKey(path.join(dir, 'client_ed25519'), 'ed25519'),
      generateKey(path.join(dir, 'client_encrypted'), 'ed25519', 'correct horse battery staple'),
      generateKey(path.join(dir, 'stranger_ed25519'), 'ed25519'),
    ]);
    const authorizedKeys = path.join(dir, 'authorized_keys');
    fs.writeFileSync(authorizedKeys, `${clientKey.publicLine}\n${encryptedClientKey.publicLine}\n`, { mode: 0o644 });

    const port = await freePort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(config, [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${ed25519.privateKey}`,
      `HostKey ${rsa.privateKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      `AllowUsers ${TEST_USER}`,
      'Subsystem sftp internal-sftp',
      'MaxStartups 50',
      'LogLevel VERBOSE',
      '',
    ].join('\n'));

    let stderr = '';
    child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    const started = child;
    child.once('exit', () => running.delete(started));
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const log = () => stderr;
    await waitForBanner(port, child, log);

    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      dir,
      user: TEST_USER,
      uid,
      gid,
      inbox,
      hostKeys: { ed25519, rsa },
      clientKey,
      encryptedClientKey,
      clientPassphrase: 'correct horse battery staple',
      strangerKey,
      authorize(publicLine) {
        fs.appendFileSync(authorizedKeys, `${publicLine.trim()}\n`);
      },
      knownHostsLine(type, hostField = `[127.0.0.1]:${port}`) {
        const key = type === 'ed25519' ? ed25519 : rsa;
        const [keyType, blob] = key.publicLine.split(' ');
        return `${hostField} ${keyType} ${blob}`;
      },
      log,
      async stop() {
        if (stopped) return;
        stopped = true;
        await killAndWait(started);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (child) await killAndWait(child);
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
