/**
 * The sd_notify(3) protocol without libsystemd: readiness, status, reload, stop and watchdog
 * messages are datagrams of `KEY=VALUE` lines sent to the unix socket named by
 * `$NOTIFY_SOCKET`. Node's dgram module has no unix sockets, so `unix-dgram` sends them.
 */
import { execFile } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Logger } from './logger';

/** The part of `unix-dgram` used here (it ships no types). */
export interface UnixDgramSocket extends EventEmitter {
  bind(path: string): void;
  send(buf: Buffer, offset: number, length: number, path: string, callback?: (error?: Error) => void): void;
  close(): void;
}

interface UnixDgramModule {
  createSocket(type: 'unix_dgram', listener?: (message: Buffer) => void): UnixDgramSocket;
}

export function unixDgram(): UnixDgramModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('unix-dgram') as UnixDgramModule;
}

export type NotifyAddress = { kind: 'path'; path: string } | { kind: 'abstract'; name: string };

/**
 * `$NOTIFY_SOCKET`: an absolute path, or `@name` for a socket in the Linux abstract namespace.
 * Anything else is not a notify socket (sd_notify ignores it too).
 */
export function parseNotifySocket(value: string | undefined): NotifyAddress | undefined {
  if (!value) return undefined;
  if (value.startsWith('/')) return { kind: 'path', path: value };
  if (value.startsWith('@') && value.length > 1) return { kind: 'abstract', name: value.slice(1) };
  return undefined;
}

/**
 * The watchdog ping interval: half of `$WATCHDOG_USEC`, when it is set and `$WATCHDOG_PID` is
 * unset or names this process (sd_watchdog_enabled(3)). Undefined: no watchdog.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && env.WATCHDOG_PID !== String(pid)) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2 / 1000));
}

export type NotifyState = Record<string, string | number>;

/** `KEY=VALUE` lines; a value cannot span lines (a newline would start a new assignment). */
export function formatNotifyMessage(state: NotifyState): string {
  return Object.entries(state).map(([key, value]) => `${key}=${String(value).replace(/[\r\n]+/g, ' ')}`).join('\n');
}

/** CLOCK_MONOTONIC in microseconds (`MONOTONIC_USEC=` of a reload; libuv's hrtime is that clock). */
export function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}

export interface Notifier {
  /** False when there is no notify socket: every message is dropped. */
  readonly enabled: boolean;
  notify(state: NotifyState): void;
  /** Waits for messages still being sent (the abstract-socket fallback is asynchronous). */
  flush(): Promise<void>;
}

export interface NotifierOptions {
  logger: Logger;
  pid?: number;
  /** The fallback for abstract sockets; replaceable in tests. */
  runNotifyCommand?: (args: string[], env: NodeJS.ProcessEnv) => Promise<void>;
}

function runSystemdNotify(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('systemd-notify', args, { env, timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`systemd-notify ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve();
    });
  });
}

/**
 * A notifier for `$NOTIFY_SOCKET`. A path socket gets each message as one datagram, sent from
 * this process (so `NotifyAccess=main` accepts it). `unix-dgram` cannot address the abstract
 * namespace (it passes the full `sockaddr_un` length, so `@name` would never match), so for
 * `@name` the message goes through `systemd-notify --pid=OURS --no-block`, which the manager accepts only
 * with `NotifyAccess=all` unless it runs as root. Systemd itself uses path sockets.
 * A send that fails is logged once at warning and never stops the daemon.
 */
export function createNotifier(env: NodeJS.ProcessEnv, options: NotifierOptions): Notifier {
  const address = parseNotifySocket(env.NOTIFY_SOCKET);
  const { logger } = options;
  const pid = options.pid ?? process.pid;
  if (!address) {
    if (env.NOTIFY_SOCKET) logger.warn(`NOTIFY_SOCKET="${env.NOTIFY_SOCKET}" is neither an absolute path nor @name; systemd is not notified`);
    return { enabled: false, notify: () => undefined, flush: async () => undefined };
  }
  let warned = false;
  const failed = (error: unknown) => {
    if (warned) return;
    warned = true;
    logger.warn(`cannot notify the service manager at ${env.NOTIFY_SOCKET}: ${(error as Error).message ?? String(error)}`);
  };

  if (address.kind === 'path') {
    const dgram = unixDgram();
    return {
      enabled: true,
      notify(state) {
        const message = Buffer.from(formatNotifyMessage(state), 'utf8');
        // A socket per message: notify messages are rare, and an open unix-dgram socket would
        // keep the event loop alive after shutdown.
        let socket: UnixDgramSocket | undefined;
        try {
          socket = dgram.createSocket('unix_dgram');
          socket.on('error', failed);
          socket.send(message, 0, message.length, address.path, (error) => {
            if (error) failed(error);
          });
        } catch (error) {
          failed(error);
        } finally {
          try {
            socket?.close();
          } catch {
            // already closed
          }
        }
      },
      flush: async () => undefined,
    };
  }

  const run = options.runNotifyCommand ?? runSystemdNotify;
  // Messages go out in order: READY must not overtake RELOADING.
  let chain: Promise<void> = Promise.resolve();
  return {
    enabled: true,
    notify(state) {
      const args = [`--pid=${pid}`, '--no-block', ...formatNotifyMessage(state).split('\n')];
      chain = chain.then(() => run(args, { ...env, NOTIFY_SOCKET: `@${address.name}` })).catch(failed);
    },
    flush: () => chain,
  };
}

/** Pings the watchdog from the event loop: a blocked loop stops the pings and systemd notices. */
export function startWatchdog(notifier: Notifier, env: NodeJS.ProcessEnv, pid: number = process.pid): { stop(): void; intervalMs?: number } {
  const intervalMs = watchdogIntervalMs(env, pid);
  if (!notifier.enabled || intervalMs === undefined) return { stop: () => undefined };
  notifier.notify({ WATCHDOG: 1 });
  const timer = setInterval(() => notifier.notify({ WATCHDOG: 1 }), intervalMs);
  return { stop: () => clearInterval(timer), intervalMs };
}
