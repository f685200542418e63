/**
 * A stand-in for systemd's notify socket: a unix datagram socket (unix-dgram, as the daemon
 * uses) bound in a temp directory. Pass `path` as NOTIFY_SOCKET; each datagram received is
 * one message of `KEY=VALUE` lines.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unixDgram, type UnixDgramSocket } from '../../daemon/systemd';

export class NotifyListener {
  readonly messages: string[] = [];
  private readonly socket: UnixDgramSocket;
  private closed = false;

  private constructor(readonly path: string, private readonly dir: string) {
    this.socket = unixDgram().createSocket('unix_dgram', (message) => this.messages.push(message.toString('utf8')));
  }

  /** Binds a socket at a fresh short path (sun_path holds 107 bytes). */
  static async open(): Promise<NotifyListener> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-notify-'));
    const listener = new NotifyListener(path.join(dir, 'notify'), dir);
    await new Promise<void>((resolve, reject) => {
      listener.socket.once('listening', () => resolve());
      listener.socket.once('error', reject);
      listener.socket.bind(listener.path);
    });
    return listener;
  }

  /** Every `KEY=VALUE` assignment received, in order. */
  assignments(): string[] {
    return this.messages.flatMap((message) => message.split('\n'));
  }

  /** Index of the first assignment equal to `assignment` (or matching it) at or after `from`; -1 if none. */
  indexOf(assignment: string | RegExp, from = 0): number {
    const all = this.assignments();
    for (let i = from; i < all.length; i++) {
      if (typeof assignment === 'string' ? all[i] === assignment : assignment.test(all[i]!)) return i;
    }
    return -1;
  }

  count(assignment: string): number {
    return this.assignments().filter((a) => a === assignment).length;
  }

  async waitFor(assignment: string | RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<number> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    for (;;) {
      const index = this.indexOf(assignment, options.from ?? 0);
      if (index >= 0) return index;
      if (Date.now() > deadline) throw new Error(`no ${assignment} on the notify socket; received:\n${this.assignments().join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
