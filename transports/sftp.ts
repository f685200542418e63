import fs from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { posix as remotePath } from 'node:path';
import type { Algorithms, Client as SshClient } from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import { durationSchema, parseDuration } from '../daemon/duration';
import { SbeError } from '../daemon/errors';
import type { Logger } from '../daemon/logger';
import { defineTransport, retryProperty, type DeliveryContext, type DeliveryFile, type RetryOptions, type Transport } from '../daemon/transportApi';
import {
  checkKnownHosts,
  FINGERPRINT_PATTERN,
  fingerprintOf,
  hostKeyAlgorithmsFor,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  normalizeFingerprint,
  parseKnownHosts,
  usablePrivateKey,
  type KnownHostsEntry,
} from './sshKeys';

export interface SftpOptions {
  transport: 'sftp';
  host: string;
  port?: number;
  username: string;
  remoteDir: string;
  privateKey?: string;
  passphraseFile?: string;
  passphraseEnv?: string;
  passwordFile?: string;
  hostKeys?: string[];
  knownHostsFile?: string;
  connectTimeout?: string;
  operationTimeout?: string;
  keepaliveInterval?: string;
  retry?: RetryOptions;
}

/**
 * Upload tuning, handed to ssh2-sftp-client's `fastPut`, which passes it on to ssh2's.
 * 64 write requests of 32 KiB in flight, which are ssh2's defaults and OpenSSH
 * `sftp`'s (-B 32768 -R 64). test/bench/sftp-bench.ts found no setting clearly faster on
 * loopback (the SSH ciphers are the limit there), and 32 KiB is the request size every SFTP
 * server must accept: larger chunks are split by ssh2 into sequential writes on servers that do
 * not announce bigger limits (limits@openssh.com), which shrinks the window on a slow link.
 */
export interface UploadTuning {
  /** Bytes per SFTP write request. */
  chunkBytes: number;
  /** Write requests in flight. */
  concurrency: number;
}
export const DEFAULT_UPLOAD_TUNING: Readonly<UploadTuning> = Object.freeze({ chunkBytes: 32 * 1024, concurrency: 64 });

const KEEPALIVE_COUNT_MAX = 3;
const CLOSE_GRACE_MS = 2000;

/** ssh2's default host key algorithm order, reordered when known_hosts says which types the server has. */
const DEFAULT_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that tell a permanent refusal. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_OP_UNSUPPORTED = 8;

/** Socket errors that mean "try again later". */
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENETRESET', 'EAI_AGAIN', 'ENOTFOUND',
]);

type DeliveryErrorCode = 'DELIVERY_REFUSED' | 'DELIVERY_FAILED';

/** An error of this transport's own making, already classified; its message is the reason. */
class Classified extends Error {
  constructor(readonly deliveryCode: DeliveryErrorCode, message: string) {
    super(message);
  }
}

/** SFTP status codes in words, for the ones ssh2 reports without a useful message. */
const SFTP_STATUS_WORDS: Readonly<Record<number, string>> = {
  [SFTP_NO_SUCH_FILE]: 'no such file or directory',
  [SFTP_PERMISSION_DENIED]: 'permission denied',
  [SFTP_OP_UNSUPPORTED]: 'the server does not support this operation',
};

/**
 * The error an SFTP request failed with, with the request in words and the SFTP status code
 * kept in `code`. ssh2-sftp-client rewraps ssh2's errors as `NAME: MESSAGE PATHS` and keeps the
 * status in `code`.
 */
function sftpError(error: Error & { code?: unknown }, what: string): Error {
  const status = error.code;
  const reason = (typeof status === 'number' ? SFTP_STATUS_WORDS[status] : undefined) ?? error.message;
  return Object.assign(new Error(`${what}: ${reason}`, { cause: error }), { code: status });
}

/** Whether an error is permanent (DELIVERY_REFUSED) or worth retrying (DELIVERY_FAILED), and why, in words. */
export function classify(error: unknown): { code: DeliveryErrorCode; reason: string } {
  if (error instanceof Classified) return { code: error.deliveryCode, reason: error.message };
  if (!(error instanceof Error)) return { code: 'DELIVERY_FAILED', reason: String(error) };
  const { code, level } = error as Error & { code?: unknown; level?: unknown };
  if (typeof code === 'number') {
    const permanent = code === SFTP_NO_SUCH_FILE || code === SFTP_PERMISSION_DENIED || code === SFTP_OP_UNSUPPORTED;
    return { code: permanent ? 'DELIVERY_REFUSED' : 'DELIVERY_FAILED', reason: error.message };
  }
  // The second test: the same ssh2 error after ssh2-sftp-client rewrapped it (and lost `level`).
  if (level === 'client-authentication' || /All configured authentication methods failed/.test(error.message)) {
    return { code: 'DELIVERY_REFUSED', reason: `authentication failed: the server accepted none of the configured credentials (${error.message})` };
  }
  if (level === 'client-timeout' || /^(?:\w+: )?Timed out while waiting for handshake/.test(error.message)) return { code: 'DELIVERY_FAILED', reason: `timed out: ${error.message}` };
  if (typeof code === 'string' && TRANSIENT_ERRNO.has(code)) {
    const what = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ECONNRESET' ? 'connection reset' : code === 'ENOTFOUND' ? 'host name not found' : code;
    return { code: 'DELIVERY_FAILED', reason: `${what} (${error.message})` };
  }
  if (level === 'handshake' && /no matching/i.test(error.message)) {
    return { code: 'DELIVERY_REFUSED', reason: `the server and this client share no usable algorithm: ${error.message}` };
  }
  return { code: 'DELIVERY_FAILED', reason: error.message };
}

/** Runs `step`, turning any failure into an SbeError that names the phase. */
async function inPhase<T>(phase: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof SbeError) throw error;
    const { code, reason } = classify(error);
    throw new SbeError(code, `${phase}: ${reason}`, { cause: error });
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The SFTP requests a delivery makes, as promises; errors keep the SFTP status code in `code`. */
export interface RemoteFs {
  /** Size and kind of `path`, or undefined when it does not exist. */
  stat(path: string): Promise<{ size: number; isDirectory: boolean } | undefined>;
  /** Removes `path`; nothing when it does not exist. */
  remove(path: string): Promise<void>;
  /** Writes the local file to `path` (created or truncated). */
  upload(localPath: string, path: string): Promise<void>;
  /** `posix-rename@openssh.com` (replaces `to` atomically), or 'unsupported' when the server lacks it. */
  posixRename(from: string, to: string): Promise<'renamed' | 'unsupported'>;
  /** Plain SFTP rename, which fails when `to` exists. */
  rename(from: string, to: string): Promise<void>;
}

/**
 * Publishes one file: upload to `.NAME.part` (replacing a stale one), check its size, then
 * rename it to NAME in one step, so the SIS never sees a partial file under the final name.
 */
export async function publishFile(remote: RemoteFs, remoteDir: string, file: DeliveryFile, localSize: number): Promise<void> {
  const temp = remotePath.join(remoteDir, `.${file.name}.part`);
  const target = remotePath.join(remoteDir, file.name);
  await inPhase(`uploading ${file.name}`, async () => {
    await remote.remove(temp);
    await remote.upload(file.localPath, temp);
    const uploaded = await remote.stat(temp);
    if (uploaded?.size !== localSize) {
      throw new Classified('DELIVERY_FAILED', `${temp} has ${uploaded?.size ?? 'no'} bytes after the upload, the local file ${localSize}`);
    }
  });
  await inPhase(`renaming ${temp} to ${target}`, async () => {
    if ((await remote.posixRename(temp, target)) === 'renamed') return;
    if (await remote.stat(target)) {
      throw new Classified(
        'DELIVERY_REFUSED',
        `the server does not offer posix-rename@openssh.com and ${target} already exists, so it cannot be replaced atomically; remove it or use an OpenSSH-compatible server`,
      );
    }
    await remote.rename(temp, target);
  });
}

/** Everything a connection needs, with the secrets read (at delivery time, never logged). */
interface ConnectionSettings {
  /** What ssh2-sftp-client's `connect` forwards to ssh2's `Client.connect`. */
  config: SftpClient.ConnectOptions;
  password?: string;
  operationTimeoutMs: number;
  /** Set by the host verifier when it refuses the server's key. */
  hostKeyProblem?: string;
  /** Set by the host verifier when it accepts the server's key. */
  hostKey?: string;
}

interface Connection {
  remote: RemoteFs;
  close(): Promise<void>;
}

class TimeoutError extends Error {}

/**
 * ssh2-sftp-client's `Client` with the ssh2 connection it wraps (`client`, public in its
 * source but missing from @types/ssh2-sftp-client). That connection is used only to cut it at
 * once (`destroy`) when a delivery is aborted or times out: ssh2-sftp-client can only `end()`
 * politely, which waits for the server and never finishes on a stalled link.
 */
type SftpClientWithSsh = SftpClient & { readonly client: Pick<SshClient, 'destroy'> };

/** Callbacks for ssh2-sftp-client's global listeners, whose defaults write to the console. */
const QUIET_CALLBACKS: SftpClient.Callbacks = { error: () => undefined, end: () => undefined, close: () => undefined };

/**
 * Opens an SSH connection and its SFTP session with ssh2-sftp-client. Every request after that
 * is raced against the connection's failure (error, unexpected end, abort, timeout), which ends
 * it at once. ssh2-sftp-client rewraps the errors of its requests as `NAME: MESSAGE`, keeping
 * only `code`; the connection's own errors are taken as ssh2 emits them (with `level`, which
 * tells an authentication failure), from listeners on the connection.
 */
async function connect(settings: ConnectionSettings, tuning: UploadTuning, signal: AbortSignal | undefined): Promise<Connection> {
  if (signal?.aborted) throw new Classified('DELIVERY_FAILED', 'aborted');
  const client = new SftpClient('sis-block-export', QUIET_CALLBACKS) as SftpClientWithSsh;
  let failure: Error | undefined;
  let closing = false;
  let closed = false;
  let rejectLost!: (error: Error) => void;
  const lost = new Promise<never>((_resolve, reject) => (rejectLost = reject));
  lost.catch(() => undefined);
  const fail = (error: Error): void => {
    if (failure) return;
    failure = error;
    rejectLost(error);
    client.client.destroy();
  };
  // Stay attached for the life of the client: ssh2 may still emit an error after we give up on it.
  // All listeners of one event run before any promise reaction, so `failure` is set by the time a
  // request's own (rewrapped) rejection is looked at.
  client.on('error', (error: Error) => fail(error));
  const onGone = (): void => {
    if (!closing) fail(new Error('the connection was closed by the server or the network'));
  };
  client.on('end', onGone);
  client.on('close', () => {
    closed = true;
    onGone();
  });
  const onAbort = (): void => fail(new Classified('DELIVERY_FAILED', 'aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  if (settings.password !== undefined) {
    const password = settings.password;
    client.on('keyboard-interactive', (_name: string, _instructions: string, _lang: string, prompts: unknown[], finish: (answers: string[]) => void) => finish(prompts.map(() => password)));
  }
  // readyTimeout covers the handshake and the login; this, the opening of the SFTP session after them.
  let sessionTimer: NodeJS.Timeout | undefined;
  client.on('ready', () => {
    sessionTimer = setTimeout(
      () => fail(new TimeoutError(`no answer from the server for ${formatMs(settings.operationTimeoutMs)} while opening the SFTP session`)),
      settings.operationTimeoutMs,
    );
  });

  const close = async (): Promise<void> => {
    closing = true;
    clearTimeout(sessionTimer);
    signal?.removeEventListener('abort', onAbort);
    if (failure || closed) {
      client.client.destroy();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    try {
      await Promise.race([client.end().then(() => undefined, () => undefined), grace]);
    } finally {
      clearTimeout(timer);
      // end() resolves at once, without closing anything, when no SFTP session was opened.
      if (!closed) client.client.destroy();
    }
  };

  /** One request with a timeout; `touch` restarts the timeout (progress of a long upload). */
  const request: Request = async (what, start) => {
    if (failure) throw failure;
    let timer: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(new TimeoutError(`no answer from the server for ${formatMs(settings.operationTimeoutMs)} while ${what}`)), settings.operationTimeoutMs);
    };
    touch();
    try {
      return await Promise.race([start(touch), lost]);
    } catch (error) {
      throw failure ?? sftpError(error as Error, what);
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    await Promise.race([client.connect(settings.config), lost]);
    clearTimeout(sessionTimer);
    return { remote: remoteFs(client, request, tuning), close };
  } catch (error) {
    await close();
    if (settings.hostKeyProblem !== undefined) throw new Classified('DELIVERY_REFUSED', settings.hostKeyProblem);
    throw failure ?? error;
  }
}

type Request = <T>(what: string, start: (touch: () => void) => Promise<T>) => Promise<T>;

/** ssh2's message when the server did not announce posix-rename@openssh.com (it throws before sending anything). */
const NO_EXTENSION = /does not support this extended request/i;

/** ssh2-sftp-client's code when `stat` finds no such path (SFTP status 2, or 4 from some servers). */
const STAT_NOT_EXIST = 'ENOENT';

function remoteFs(client: SftpClient, request: Request, tuning: UploadTuning): RemoteFs {
  const isMissing = (error: unknown): boolean => (error as { code?: unknown }).code === SFTP_NO_SUCH_FILE;
  return {
    async stat(path) {
      try {
        const stats = await request(`reading the attributes of ${path}`, () => client.stat(path));
        return { size: stats.size, isDirectory: stats.isDirectory };
      } catch (error) {
        if (isMissing(error) || (error as { code?: unknown }).code === STAT_NOT_EXIST) return undefined;
        throw error;
      }
    },
    async remove(path) {
      try {
        // notFoundOK: a missing file (status 2) is no error.
        await request(`removing ${path}`, () => client.delete(path, true));
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    },
    async upload(localPath, path) {
      await request(`writing ${path}`, (touch) => client.fastPut(localPath, path, { concurrency: tuning.concurrency, chunkSize: tuning.chunkBytes, step: touch }));
    },
    async posixRename(from, to) {
      try {
        await request(`renaming ${from} to ${to}`, () => client.posixRename(from, to));
        return 'renamed';
      } catch (error) {
        // ssh2's throw reaches us as ssh2-sftp-client's rejection, not rewrapped (no `custom`).
        const cause = (error as Error).cause as (Error & { custom?: unknown }) | undefined;
        if (cause instanceof Error && cause.custom === undefined && NO_EXTENSION.test(cause.message)) return 'unsupported';
        throw error;
      }
    },
    async rename(from, to) {
      await request(`renaming ${from} to ${to}`, () => client.rename(from, to));
    },
  };
}

/** `hostKeys` and `knownHostsFile` as the host verifier uses them. */
interface HostKeyPolicy {
  pins: ReadonlySet<string>;
  knownHostsFile?: string;
  knownHosts: readonly KnownHostsEntry[];
}

function hostVerifier(options: Required<Pick<SftpOptions, 'host' | 'port'>>, policy: HostKeyPolicy, settings: ConnectionSettings): (key: Buffer) => boolean {
  return (key) => {
    const fingerprint = fingerprintOf(key);
    const offered = `server offered ${fingerprint} (${keyTypeOf(key)})`;
    const where = `host key verification failed for ${options.host}:${options.port}`;
    if (policy.knownHostsFile !== undefined) {
      const verdict = checkKnownHosts(policy.knownHosts, options.host, options.port, key);
      if (verdict.result === 'revoked') {
        settings.hostKeyProblem = `${where}: ${offered}, which is marked @revoked in ${policy.knownHostsFile} (line ${verdict.line})`;
        return false;
      }
      if (verdict.result === 'match') {
        settings.hostKey = fingerprint;
        return true;
      }
    }
    if (policy.pins.has(fingerprint)) {
      settings.hostKey = fingerprint;
      return true;
    }
    const misses = [
      ...(policy.pins.size > 0 ? ['no pinned fingerprint (hostKeys)'] : []),
      ...(policy.knownHostsFile !== undefined ? [`no entry for ${knownHostsName(options.host, options.port)} in ${policy.knownHostsFile}`] : []),
    ];
    settings.hostKeyProblem = `${where}: ${offered}, which matches ${misses.join(' and ')}`;
    return false;
  };
}

async function readSecretFile(file: string, what: string): Promise<string> {
  try {
    // One trailing newline is how editors save a one-line file; it is not part of the secret.
    return (await fs.readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    throw new Classified('DELIVERY_REFUSED', `cannot read the ${what} ${file}: ${(error as Error).message}`);
  }
}

/** Reads the key, passphrase, password and known_hosts named by the options into a connect config. */
async function connectionSettings(options: Required<Pick<SftpOptions, 'host' | 'port' | 'username'>> & SftpOptions, timeouts: Timeouts): Promise<ConnectionSettings> {
  let passphrase: string | undefined;
  if (options.passphraseFile !== undefined) passphrase = await readSecretFile(options.passphraseFile, 'passphrase file (passphraseFile)');
  if (options.passphraseEnv !== undefined) {
    passphrase = process.env[options.passphraseEnv];
    if (passphrase === undefined) throw new Classified('DELIVERY_REFUSED', `the environment variable ${options.passphraseEnv} (passphraseEnv) is not set`);
  }
  let privateKey: { key: Buffer | string; passphrase?: string } | undefined;
  if (options.privateKey !== undefined) {
    let data: Buffer;
    try {
      data = await fs.readFile(options.privateKey);
    } catch (error) {
      throw new Classified('DELIVERY_REFUSED', `cannot read the private key ${options.privateKey}: ${(error as Error).message}`);
    }
    const usable = usablePrivateKey(data, passphrase);
    if (usable instanceof Error) throw new Classified('DELIVERY_REFUSED', `cannot use the private key ${options.privateKey}: ${usable.message}`);
    privateKey = usable;
  }
  const password = options.passwordFile === undefined ? undefined : await readSecretFile(options.passwordFile, 'password file (passwordFile)');

  let knownHosts: KnownHostsEntry[] = [];
  if (options.knownHostsFile !== undefined) {
    let text: string;
    try {
      text = await fs.readFile(options.knownHostsFile, 'utf8');
    } catch (error) {
      throw new Classified('DELIVERY_REFUSED', `cannot read the known_hosts file ${options.knownHostsFile}: ${(error as Error).message}`);
    }
    knownHosts = parseKnownHosts(text);
  }
  const policy: HostKeyPolicy = {
    pins: new Set((options.hostKeys ?? []).map(normalizeFingerprint)),
    ...(options.knownHostsFile === undefined ? {} : { knownHostsFile: options.knownHostsFile }),
    knownHosts,
  };
  // Like ssh, ask for the key types known_hosts has for this server first, so a server with
  // several host keys offers one that can be checked.
  const preferred = knownKeyTypes(knownHosts, options.host, options.port).flatMap(hostKeyAlgorithmsFor).filter((name) => DEFAULT_HOST_KEY_ALGORITHMS.includes(name));
  const algorithms: Algorithms | undefined = preferred.length === 0 ? undefined : {
    serverHostKey: [...new Set([...preferred, ...DEFAULT_HOST_KEY_ALGORITHMS])] as Algorithms['serverHostKey'],
  };

  const settings: ConnectionSettings = { config: {}, operationTimeoutMs: timeouts.operation, ...(password === undefined ? {} : { password }) };
  settings.config = {
    host: options.host,
    port: options.port,
    username: options.username,
    readyTimeout: timeouts.connect,
    keepaliveInterval: timeouts.keepalive,
    keepaliveCountMax: KEEPALIVE_COUNT_MAX,
    hostVerifier: hostVerifier(options, policy, settings),
    ...(privateKey === undefined ? {} : { privateKey: privateKey.key, ...(privateKey.passphrase === undefined ? {} : { passphrase: privateKey.passphrase }) }),
    ...(password === undefined ? {} : { password, tryKeyboard: true }),
    ...(algorithms === undefined ? {} : { algorithms }),
  };
  return settings;
}

interface Timeouts {
  connect: number;
  operation: number;
  keepalive: number;
}

async function localSizes(files: readonly DeliveryFile[]): Promise<number[]> {
  const sizes: number[] = [];
  for (const file of files) {
    const size = await inPhase(`reading ${file.localPath}`, async () => (await fs.stat(file.localPath)).size);
    if (size !== file.size) throw new SbeError('DELIVERY_FAILED', `reading ${file.localPath}: it has ${size} bytes, the outbox recorded ${file.size}`);
    sizes.push(size);
  }
  return sizes;
}

async function deliver(options: SftpOptions & Required<Pick<SftpOptions, 'port'>>, timeouts: Timeouts, tuning: UploadTuning, files: readonly DeliveryFile[], ctx: DeliveryContext): Promise<void> {
  const hostPart = isIPv6(options.host) ? `[${options.host}]` : options.host;
  const label = `connecting to sftp://${options.username}@${hostPart}:${options.port}`;
  const logger: Logger = ctx.logger;
  const sizes = await localSizes(files);
  const settings = await inPhase(label, () => connectionSettings(options, timeouts));
  const started = Date.now();
  const connection = await inPhase(label, () => connect(settings, tuning, ctx.signal));
  try {
    logger.debug(`sftp: connected to ${hostPart}:${options.port} in ${Date.now() - started} ms`, { hostKey: settings.hostKey });
    await inPhase(`checking the remote directory ${options.remoteDir}`, async () => {
      const stats = await connection.remote.stat(options.remoteDir);
      if (!stats) throw new Classified('DELIVERY_REFUSED', 'it does not exist on the server');
      if (!stats.isDirectory) throw new Classified('DELIVERY_REFUSED', 'it is not a directory');
    });
    for (const [index, file] of files.entries()) {
      const fileStarted = Date.now();
      await publishFile(connection.remote, options.remoteDir, file, sizes[index]!);
      const seconds = Math.max(Date.now() - fileStarted, 1) / 1000;
      logger.debug(`sftp: published ${file.name} (${sizes[index]} bytes, ${(sizes[index]! / seconds / 1e6).toFixed(1)} MB/s)`, { file: file.name });
    }
  } finally {
    await connection.close();
  }
}

const CONNECTION_HELP = 'One of `hostKeys` and `knownHostsFile` is required (no pin, no connection); one of `privateKey` and `passwordFile` too.';

/**
 * A condition the shared validator can report with one clear message: when `condition` holds,
 * `property` fails a pattern that nothing matches, and the message is `patternHint`.
 */
function refuseWhen(condition: object, property: string, patternHint: string): object {
  return { if: condition, then: { properties: { [property]: { type: 'string', pattern: '^(?!)', patternHint } } } };
}

/** `properties` beside `required` only because Ajv's strict mode wants every required key declared where it is required. */
const has = (...keys: string[]): object => ({ properties: Object.fromEntries(keys.map((key) => [key, true])), required: keys });
const lacks = (...keys: string[]): object => ({ not: { anyOf: keys.map((key) => has(key)) } });

export default defineTransport<SftpOptions>({
  id: 'sftp',
  description:
    'Uploads the files to a directory on an SFTP server (the SIS inbox) over SSH: each file goes to a hidden `.NAME.part`, '
    + 'its size is checked, then `posix-rename@openssh.com` gives it its final name, so the SIS never sees a partial file. '
    + 'The server host key must match a pinned fingerprint or a known_hosts entry before any credential is sent. '
    + 'Refused, reset and timed-out connections are retried (see `retry`); host key, authentication and permission failures are not. '
    + CONNECTION_HELP,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['transport', 'host', 'username', 'remoteDir'],
    properties: {
      transport: { const: 'sftp' },
      host: {
        type: 'string',
        pattern: '^[^\\s/@]+$',
        patternHint: 'must be a host name or IP address, like "sis.example.edu" (no user@, no scheme, no path)',
        description: 'Host name or IP address of the SFTP server.',
      },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: 22, description: 'SSH port of the server.' },
      username: { type: 'string', minLength: 1, description: 'User name to log in as.' },
      remoteDir: {
        type: 'string',
        pattern: '^/',
        patternHint: 'must be an absolute path on the server, like "/inbox"',
        description: 'Absolute path of the SIS inbox directory on the server; it must exist and be writable.',
      },
      privateKey: { type: 'string', minLength: 1, description: 'Path of the OpenSSH or PEM private key to log in with; relative to the profile file.' },
      passphraseFile: { type: 'string', minLength: 1, description: "Path of a file holding the private key's passphrase (one line); relative to the profile file." },
      passphraseEnv: {
        type: 'string',
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        patternHint: 'must be the name of an environment variable, like "SIS_SFTP_PASSPHRASE"',
        description: "Name of the environment variable holding the private key's passphrase (instead of passphraseFile).",
      },
      passwordFile: { type: 'string', minLength: 1, description: 'Path of a file holding the password (one line), when the server wants one; relative to the profile file. Passwords are never written in a profile.' },
      hostKeys: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'string',
          pattern: FINGERPRINT_PATTERN,
          patternHint: 'must be an OpenSSH SHA256 fingerprint like "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU" (see `ssh-keyscan HOST | ssh-keygen -lf -`)',
        },
        description: 'Pinned SHA256 fingerprints of the server host key (`ssh-keyscan -p PORT HOST | ssh-keygen -lf -`); the key the server offers must match one.',
      },
      knownHostsFile: {
        type: 'string',
        minLength: 1,
        description: 'Path of an OpenSSH known_hosts file that lists the server (plain or hashed entries, `[host]:port` for other ports than 22, `@revoked` honoured); relative to the profile file.',
      },
      connectTimeout: durationSchema('20s', 'Time allowed to connect, verify the host key and log in.'),
      operationTimeout: durationSchema('60s', 'Time allowed for each SFTP request, and for an upload without progress.'),
      keepaliveInterval: durationSchema('10s', 'Interval of SSH keepalives; the connection is given up after 3 unanswered ones.'),
      retry: retryProperty,
    },
    allOf: [
      refuseWhen(lacks('hostKeys', 'knownHostsFile'), 'transport',
        'is sftp, which needs the server host key pinned: add "hostKeys" (SHA256 fingerprints) or "knownHostsFile" to the delivery'),
      refuseWhen(lacks('privateKey', 'passwordFile'), 'transport',
        'is sftp, which needs a way to log in: add "privateKey" (a key file) or "passwordFile" to the delivery'),
      refuseWhen(has('passphraseFile', 'passphraseEnv'), 'passphraseEnv', 'cannot be given together with "passphraseFile"; keep one of them'),
      refuseWhen({ allOf: [has('passphraseFile'), lacks('privateKey')] }, 'passphraseFile', 'only applies to "privateKey", which is not given'),
      refuseWhen({ allOf: [has('passphraseEnv'), lacks('privateKey')] }, 'passphraseEnv', 'only applies to "privateKey", which is not given'),
    ],
  },
  examples: [
    {
      transport: 'sftp',
      host: 'sis.example.edu',
      port: 22,
      username: 'library',
      privateKey: 'keys/id_ed25519',
      hostKeys: ['SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU'],
      remoteDir: '/inbox',
      retry: { attempts: 10, initialDelay: '5s', maxDelay: '10m' },
    },
    {
      transport: 'sftp',
      host: 'sis.example.edu',
      port: 2222,
      username: 'library',
      privateKey: 'keys/id_ed25519',
      passphraseEnv: 'SIS_SFTP_PASSPHRASE',
      knownHostsFile: 'keys/known_hosts',
      remoteDir: '/inbox/library',
    },
  ],
  pathFields: ['privateKey', 'passphraseFile', 'passwordFile', 'knownHostsFile'],
  create: (options) => createSftpTransport(options),
});

/** The transport for validated `options`; `tuning` is for the benchmark (test/bench/sftp-bench.ts). */
export function createSftpTransport(options: SftpOptions, tuning: UploadTuning = DEFAULT_UPLOAD_TUNING): Transport {
  const resolved = { ...options, port: options.port ?? 22 };
  const timeouts: Timeouts = {
    connect: parseDuration(options.connectTimeout ?? '20s'),
    operation: parseDuration(options.operationTimeout ?? '60s'),
    keepalive: parseDuration(options.keepaliveInterval ?? '10s'),
  };
  const hostPart = isIPv6(options.host) ? `[${options.host}]` : options.host;
  return {
    describe: () => `sftp://${options.username}@${hostPart}:${resolved.port}${options.remoteDir}`,
    deliver: (files, ctx) => deliver(resolved, timeouts, tuning, files, ctx),
  };
}
