/**
 * The real daemon (`bin/sis-block-export run`) as a child process: its stderr lines are
 * collected and can be waited for. Every daemon started is killed by `killAllDaemons()`
 * (call it in afterEach).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { BIN } from './cli';

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class DaemonProcess {
  readonly lines: string[] = [];
  stdout = '';
  readonly exited: Promise<DaemonExit>;
  private partial = '';
  private waiters: (() => void)[] = [];
  private exit: DaemonExit | undefined;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    child.stderr.on('data', (chunk: Buffer) => {
      this.partial += chunk.toString();
      const parts = this.partial.split('\n');
      this.partial = parts.pop()!;
      if (parts.length > 0) {
        this.lines.push(...parts);
        this.wake();
      }
    });
    child.stdout.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        if (this.partial) this.lines.push(this.partial);
        this.partial = '';
        this.exit = { code, signal };
        this.wake();
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** The number of lines so far: pass it as `from` to wait only for later lines. */
  mark(): number {
    return this.lines.length;
  }

  /** Lines from index `from` on that match. */
  matching(pattern: RegExp, from = 0): string[] {
    return this.lines.slice(from).filter((line) => pattern.test(line));
  }

  /** Waits for a line matching `pattern` at index `from` or later; returns it. */
  async waitForLine(pattern: RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<string> {
    return this.waitFor(() => this.matching(pattern, options.from)[0], `a line matching ${pattern}`, options.timeoutMs);
  }

  /** Waits until `probe` returns something other than undefined (checked on each line and every 50 ms). */
  async waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = probe();
      if (found !== undefined && found !== false) return found;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; daemon output:\n${this.lines.join('\n')}`);
      }
      if (this.exit && !this.running) {
        const again = probe();
        if (again !== undefined && again !== false) return again;
        throw new Error(`the daemon exited (${JSON.stringify(this.exit)}) while waiting for ${what}; output:\n${this.lines.join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<DaemonExit> {
    this.signal(signal);
    const timer = setTimeout(() => this.signal('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  output(): string {
    return this.lines.join('\n');
  }
}

const started = new Set<DaemonProcess>();

/** Starts `sis-block-export run ARGS` with exactly `env` (plus PATH). */
export function startDaemon(args: readonly string[], env: NodeJS.ProcessEnv): DaemonProcess {
  const child = spawn(BIN, ['run', ...args], {
    env: { PATH: process.env.PATH, SIS_BLOCK_EXPORT_CONFIG: '/nonexistent/config.yaml', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const daemon = new DaemonProcess(child);
  started.add(daemon);
  void daemon.exited.then(() => started.delete(daemon));
  return daemon;
}

/** Kills every daemon still running (SIGKILL) and waits for them. */
export async function killAllDaemons(): Promise<void> {
  const running = [...started];
  for (const daemon of running) daemon.signal('SIGKILL');
  await Promise.all(running.map((daemon) => daemon.exited));
}
