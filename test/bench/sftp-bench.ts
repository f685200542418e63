/**
 * SFTP upload benchmark: our `sftp` transport against OpenSSH's own `sftp` client, same file,
 * same loopback sshd (test/helpers/sshd.ts), in one run. Needs root and OpenSSH, like the tests.
 *
 *   node dist/test/bench/sftp-bench.js [--mb N] [--runs N] [--chunk KIB] [--concurrency N] [--json]
 *
 * Each run times one whole delivery for each client, connection set-up included: ours is
 * `deliver()` on ssh2-sftp-client (connect, stat, delete a stale temp file, fastPut, stat,
 * posixRename, end), OpenSSH's is
 * `sftp -b BATCH` with one `put`. The two alternate which goes first. Every upload is checked
 * (size, and the SHA-256 on the first run). Throughput is MiB/s (2^20 bytes per second); the
 * figure reported is the median of the runs, and the ratio is ours / OpenSSH.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../../daemon/logger';
import { createSftpTransport, DEFAULT_UPLOAD_TUNING, type UploadTuning } from '../../transports/sftp';
import { SSHD, startSshd, sshdUnavailable, type Sshd } from '../helpers/sshd';

const run = promisify(execFile);
const MIB = 1024 * 1024;

interface Options {
  mb: number;
  runs: number;
  tuning: UploadTuning;
  json: boolean;
}

const USAGE = `usage: node dist/test/bench/sftp-bench.js [--mb N] [--runs N] [--chunk KIB] [--concurrency N] [--json]
  --mb N           size of the random test file in MiB (default 256)
  --runs N         timed uploads per client (default 3); the median is reported
  --chunk KIB      our fastPut request size in KiB (default ${DEFAULT_UPLOAD_TUNING.chunkBytes / 1024})
  --concurrency N  our fastPut requests in flight (default ${DEFAULT_UPLOAD_TUNING.concurrency})
  --json           print the result as JSON`;

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { mb: 256, runs: 3, tuning: { ...DEFAULT_UPLOAD_TUNING }, json: false };
  const positive = (name: string, text: string | undefined): number => {
    if (text === undefined || !/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`${name} needs a positive whole number, not "${text ?? ''}"`);
    return Number(text);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--mb':
        options.mb = positive(arg, argv[++i]);
        break;
      case '--runs':
        options.runs = positive(arg, argv[++i]);
        break;
      case '--chunk':
        options.tuning.chunkBytes = positive(arg, argv[++i]) * 1024;
        break;
      case '--concurrency':
        options.tuning.concurrency = positive(arg, argv[++i]);
        break;
      case '--json':
        options.json = true;
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  return options;
}

const silent: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, child: () => silent };

async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const handle = await fs.promises.open(file, 'w');
  try {
    for (let written = 0; written < bytes; written += 4 * MIB) await handle.write(randomBytes(Math.min(4 * MIB, bytes - written)));
  } finally {
    await handle.close();
  }
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    fs.createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function versions(): Promise<Record<string, string>> {
  const ssh = await run('ssh', ['-V']).then(({ stdout, stderr }) => (stderr || stdout).trim(), () => 'unknown');
  // sshd has no version flag; its usage text (exit 1) starts with the version.
  const sshd = await run(SSHD, ['-V']).then(({ stderr }) => stderr.trim(), (error: { stderr?: string }) => (error.stderr ?? '').split('\n')[0]!.trim() || 'unknown');
  const versionOf = (name: string): string => {
    try {
      return (JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown'; // not resolvable
    }
  };
  return { node: process.version, ssh2_sftp_client: versionOf('ssh2-sftp-client'), ssh2: versionOf('ssh2'), openssh_client: ssh, openssh_server: sshd, os: `${os.type()} ${os.release()} ${os.arch()}`, cpu: os.cpus()[0]?.model ?? 'unknown' };
}

interface Measurement {
  client: 'ours' | 'openssh';
  run: number;
  seconds: number;
  mibPerSecond: number;
}

async function timeOurs(sshd: Sshd, file: string, bytes: number, tuning: UploadTuning): Promise<number> {
  const transport = createSftpTransport(
    {
      transport: 'sftp',
      host: sshd.host,
      port: sshd.port,
      username: sshd.user,
      privateKey: sshd.clientKey.privateKey,
      hostKeys: [sshd.hostKeys.ed25519.fingerprint],
      remoteDir: sshd.inbox,
    },
    tuning,
  );
  const started = process.hrtime.bigint();
  await transport.deliver([{ localPath: file, name: 'ours.bin', size: bytes }], { logger: silent });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function opensshArgs(sshd: Sshd, batch: string, knownHosts: string): string[] {
  return [
    '-b', batch,
    '-i', sshd.clientKey.privateKey,
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-P', String(sshd.port),
    `${sshd.user}@${sshd.host}`,
  ];
}

async function timeOpenssh(args: readonly string[]): Promise<number> {
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sftp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`sftp exited ${code}: ${stderr.trim()}`))));
  });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const unavailable = sshdUnavailable();
  if (unavailable) throw new UsageError(unavailable);
  const bytes = options.mb * MIB;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-sftp-bench-'));
  let sshd: Sshd | undefined;
  try {
    const file = path.join(work, 'export.bin');
    await writeRandomFile(file, bytes);
    const expectedHash = await sha256(file);
    sshd = await startSshd();
    const knownHosts = path.join(work, 'known_hosts');
    fs.writeFileSync(knownHosts, `${sshd.knownHostsLine('ed25519')}\n`);
    const batch = path.join(work, 'batch');
    fs.writeFileSync(batch, `put ${file} ${sshd.inbox}/openssh.bin\n`);
    const args = opensshArgs(sshd, batch, knownHosts);

    const measurements: Measurement[] = [];
    const check = async (name: string, run: number): Promise<void> => {
      const uploaded = path.join(sshd!.inbox, name);
      const size = fs.statSync(uploaded).size;
      if (size !== bytes) throw new Error(`${name} has ${size} bytes, expected ${bytes}`);
      if (run === 1 && (await sha256(uploaded)) !== expectedHash) throw new Error(`${name} differs from the source file`);
      fs.rmSync(uploaded);
    };
    for (let runNumber = 1; runNumber <= options.runs; runNumber++) {
      const order: ('ours' | 'openssh')[] = runNumber % 2 ? ['ours', 'openssh'] : ['openssh', 'ours'];
      for (const client of order) {
        const seconds = client === 'ours' ? await timeOurs(sshd, file, bytes, options.tuning) : await timeOpenssh(args);
        await check(client === 'ours' ? 'ours.bin' : 'openssh.bin', runNumber);
        measurements.push({ client, run: runNumber, seconds, mibPerSecond: bytes / MIB / seconds });
      }
    }

    const medianOf = (client: 'ours' | 'openssh') => median(measurements.filter((m) => m.client === client).map((m) => m.mibPerSecond));
    const ours = medianOf('ours');
    const openssh = medianOf('openssh');
    const result = {
      command: `node dist/test/bench/sftp-bench.js ${process.argv.slice(2).join(' ')}`.trim(),
      fileMiB: options.mb,
      runs: options.runs,
      tuning: { chunkKiB: options.tuning.chunkBytes / 1024, concurrency: options.tuning.concurrency },
      versions: await versions(),
      opensshCommand: ['sftp', ...args].join(' '),
      measurements,
      medianMiBPerSecond: { ours: Number(ours.toFixed(1)), openssh: Number(openssh.toFixed(1)) },
      ratio: Number((ours / openssh).toFixed(2)),
    };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    const lines = [
      `command:   ${result.command}`,
      `file:      ${options.mb} MiB of random bytes, ${options.runs} run(s) per client, connection set-up included`,
      `versions:  node ${result.versions.node}, ssh2-sftp-client ${result.versions.ssh2_sftp_client}, ssh2 ${result.versions.ssh2}; ${result.versions.openssh_client}; server ${result.versions.openssh_server}`,
      `machine:   ${result.versions.os}, ${result.versions.cpu}`,
      `ours:      sftp transport deliver() on ssh2-sftp-client, fastPut ${result.tuning.chunkKiB} KiB x ${result.tuning.concurrency} in flight`,
      `openssh:   ${result.opensshCommand}`,
      '',
      ...measurements.map((m) => `  run ${m.run}  ${m.client.padEnd(8)} ${m.seconds.toFixed(2).padStart(7)} s  ${m.mibPerSecond.toFixed(1).padStart(7)} MiB/s`),
      '',
      `median:    ours ${result.medianMiBPerSecond.ours} MiB/s, OpenSSH sftp ${result.medianMiBPerSecond.openssh} MiB/s, ratio ours/OpenSSH ${result.ratio}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await sshd?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
});
