/**
 * Keeps the daemon's profiles in step with the profiles directory: `fs.watch` on the directory
 * for promptness, a periodic rescan as a safety net (fs.watch misses events on some file
 * systems and stops when the directory is replaced).
 *
 * - Editor files are ignored: only `*.yaml`/`*.yml` that are not hidden (`.x.yaml.swp`,
 *   `.#x.yaml`), not backups (`x.yaml~`) and not vim's `4913` probe (`isProfileFileName`).
 * - A file is read only once it is settled: its size, mtime, ctime and inode are unchanged
 *   across two checks at least `stableMs` apart, and it was last modified at least `settleMs`
 *   ago. A file written in pieces is therefore never parsed half-written.
 * - A file that vanishes is dropped only when it is still missing `stableMs` later (editors
 *   save by renaming, which leaves a short gap).
 * - An invalid version is logged at error with file, line and column (once per version); the
 *   last valid version of that file stays in effect.
 * - Two files with the same profile id: the first file in name order (byte order, as `ls` in
 *   the C locale) owns the id; the other is refused and logged with both names. The outcome
 *   does not depend on which file appeared first, so a restart gives the same profiles.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { SbeError } from './errors';
import type { Logger } from './logger';
import { isProfileFileName, parseProfile, type Profile } from './profiles';
import type { Registry } from './registry';

export interface ProfileWatcherOptions {
  dir: string;
  registry: Registry;
  logger: Logger;
  /** Called with the profiles in effect, by id, whenever that set or one of its versions changes. */
  onChange(profiles: ReadonlyMap<string, Profile>): void;
  /** Periodic rescan. Default 2 s. */
  rescanMs?: number;
  /** Delay between a watch event and the scan, gathering bursts of events. Default 100 ms. */
  debounceMs?: number;
  /** Two checks this far apart must see the same file. Default 300 ms. */
  stableMs?: number;
  /** Minimum age of the last modification before a file is read. Default 1 s. */
  settleMs?: number;
  /** Milliseconds, like Date.now. */
  clock?: () => number;
}

interface FileEntry {
  file: string;
  /** Last observed `ino:size:mtime:ctime`, and when it was first seen. */
  signature?: string;
  signatureSince: number;
  mtimeMs: number;
  /** The signature of the version last parsed, valid or not. */
  parsedSignature?: string;
  /** The last valid version. */
  profile?: Profile;
  text?: string;
  missingSince?: number;
  /** The file that owns this file's id, while this one is refused as a duplicate. */
  refusedBy?: string;
}

function signatureOf(stat: fs.Stats): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
}

export class ProfileWatcher {
  private dir: string;
  private registry: Registry;
  private readonly logger: Logger;
  private readonly entries = new Map<string, FileEntry>();
  private readonly rescanMs: number;
  private readonly debounceMs: number;
  private readonly stableMs: number;
  private readonly settleMs: number;
  private readonly clock: () => number;
  private watcher: fs.FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private scanAgain = false;
  private stopped = true;
  private dirMissingLogged = false;
  private effective = new Map<string, Profile>();
  /** When the last scan would like to look again (a file not settled yet), or undefined. */
  private nextCheckAt: number | undefined;

  constructor(private readonly options: ProfileWatcherOptions) {
    this.dir = options.dir;
    this.registry = options.registry;
    this.logger = options.logger;
    this.rescanMs = options.rescanMs ?? 2000;
    this.debounceMs = options.debounceMs ?? 100;
    this.stableMs = options.stableMs ?? 300;
    this.settleMs = options.settleMs ?? 1000;
    this.clock = options.clock ?? Date.now;
  }

  get directory(): string {
    return this.dir;
  }

  /** The profiles in effect, by id. */
  get profiles(): ReadonlyMap<string, Profile> {
    return this.effective;
  }

  /**
   * Loads the directory and starts watching it. Resolves once every file present has been read
   * (or has kept changing for `maxWaitMs`; it is then read when it settles).
   */
  async start(maxWaitMs = 5000): Promise<void> {
    this.stopped = false;
    await this.settle(maxWaitMs);
    this.watch();
    this.rescanTimer = setInterval(() => this.requestScan(0), this.rescanMs);
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    for (const timer of [this.rescanTimer, this.debounceTimer, this.checkTimer]) if (timer) clearTimeout(timer);
    this.rescanTimer = this.debounceTimer = this.checkTimer = undefined;
  }

  /**
   * Reads every file again, with a new directory and registry (SIGHUP). Files already settled
   * are parsed at once; the promise resolves when the directory has settled.
   */
  async reload(options: { dir: string; registry: Registry }, maxWaitMs = 5000): Promise<void> {
    if (options.dir !== this.dir) {
      this.logger.info(`profiles directory is now ${options.dir} (was ${this.dir})`);
      this.dir = options.dir;
      this.watcher?.close();
      this.watcher = undefined;
      this.dirMissingLogged = false;
    }
    this.registry = options.registry;
    for (const entry of this.entries.values()) entry.parsedSignature = undefined;
    await this.settle(maxWaitMs);
    this.watch();
  }

  /** Scans until no file waits to settle, or `maxWaitMs` has passed. */
  private async settle(maxWaitMs: number): Promise<void> {
    const deadline = this.clock() + maxWaitMs;
    for (;;) {
      await this.scan();
      if (this.nextCheckAt === undefined || this.clock() >= deadline) return;
      const wait = Math.min(Math.max(this.nextCheckAt - this.clock(), 10), deadline - this.clock());
      await new Promise((resolve) => setTimeout(resolve, Math.max(wait, 0)));
    }
  }

  private watch(): void {
    if (this.stopped || this.watcher) return;
    try {
      this.watcher = fs.watch(this.dir, { persistent: true }, () => this.requestScan(this.debounceMs));
      this.watcher.on('error', () => {
        // The directory went away or was replaced: the periodic rescan takes over and
        // watches again once the directory is back.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined;
    }
  }

  private requestScan(delayMs: number): void {
    if (this.stopped) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.scan();
    }, delayMs);
  }

  /** One pass over the directory; scans never overlap (a request during a scan runs after it). */
  scan(): Promise<void> {
    if (this.scanning) {
      this.scanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.scanAgain = false;
          await this.scanOnce();
        } while (this.scanAgain);
      } catch (error) {
        this.logger.error(`scanning the profiles directory ${this.dir} failed: ${(error as Error).message}`);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    this.nextCheckAt = undefined;
    const names = await this.listNames();
    const present = new Set<string>();
    for (const name of names) {
      const file = path.join(this.dir, name);
      let stat: fs.Stats;
      try {
        stat = await fsp.stat(file);
      } catch {
        continue; // gone since readdir: handled as missing below
      }
      if (!stat.isFile()) continue;
      present.add(file);
      await this.check(file, stat);
    }
    const now = this.clock();
    for (const entry of [...this.entries.values()]) {
      if (present.has(entry.file)) continue;
      if (entry.missingSince === undefined) {
        entry.missingSince = now;
        this.wantCheckAt(now + this.stableMs);
      } else if (now - entry.missingSince >= this.stableMs) {
        this.entries.delete(entry.file);
        if (entry.profile) this.logger.info(`profile file ${entry.file} removed: profile ${entry.profile.id} is no longer in effect`, { profile: entry.profile.id, file: entry.file });
      } else {
        this.wantCheckAt(entry.missingSince + this.stableMs);
      }
    }
    this.recompute();
    this.armCheck();
    if (!this.watcher) this.watch();
  }

  private async listNames(): Promise<string[]> {
    try {
      const names = (await fsp.readdir(this.dir)).filter(isProfileFileName).sort();
      this.dirMissingLogged = false;
      return names;
    } catch (error) {
      if (!this.dirMissingLogged) {
        this.dirMissingLogged = true;
        const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(error as Error).message}`;
        this.logger.warn(`the profiles directory ${this.dir} ${reason}; no profiles are loaded from it until it can be read`);
      }
      return [];
    }
  }

  private wantCheckAt(at: number): void {
    if (this.nextCheckAt === undefined || at < this.nextCheckAt) this.nextCheckAt = at;
  }

  private armCheck(): void {
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.checkTimer = undefined;
    if (this.stopped || this.nextCheckAt === undefined) return;
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      void this.scan();
    }, Math.max(this.nextCheckAt - this.clock(), 10));
  }

  private async check(file: string, stat: fs.Stats): Promise<void> {
    const now = this.clock();
    const signature = signatureOf(stat);
    let entry = this.entries.get(file);
    if (!entry) {
      entry = { file, signatureSince: now, mtimeMs: stat.mtimeMs };
      this.entries.set(file, entry);
    }
    entry.missingSince = undefined;
    if (signature !== entry.signature) {
      entry.signature = signature;
      entry.signatureSince = now;
      entry.mtimeMs = stat.mtimeMs;
      this.wantCheckAt(now + this.stableMs);
      return;
    }
    if (signature === entry.parsedSignature) return;
    const observed = now - entry.signatureSince;
    const age = now - entry.mtimeMs;
    // An mtime in the future (clock skew on a network file system) counts by our own clock.
    const settled = observed >= this.stableMs && (age >= this.settleMs || observed >= this.settleMs);
    if (!settled) {
      this.wantCheckAt(Math.max(entry.signatureSince + this.stableMs, Math.min(entry.mtimeMs, now) + this.settleMs, now + 10));
      return;
    }
    await this.read(entry, signature);
  }

  private async read(entry: FileEntry, signature: string): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(entry.file, 'utf8');
      const after = signatureOf(await fsp.stat(entry.file));
      if (after !== signature) {
        // Written while we read it: wait for it to settle again.
        entry.signature = after;
        entry.signatureSince = this.clock();
        this.wantCheckAt(this.clock() + this.stableMs);
        return;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      entry.parsedSignature = signature;
      this.logger.error(`cannot read profile file ${entry.file}: ${(error as Error).message}${entry.profile ? `; the last valid version of profile ${entry.profile.id} stays in effect` : ''}`, { file: entry.file });
      return;
    }
    entry.parsedSignature = signature;
    if (entry.profile && text === entry.text && !this.registryChanged(entry)) return;
    let profile: Profile;
    try {
      profile = parseProfile(entry.file, text, this.registry);
    } catch (error) {
      if (!(error instanceof SbeError)) throw error;
      const kept = entry.profile ? `the last valid version of profile ${entry.profile.id} stays in effect` : 'the file is not loaded';
      this.logger.error(`${error.describe()}\n  ${kept}`, { file: entry.file, code: error.code, ...(entry.profile ? { profile: entry.profile.id } : {}) });
      return;
    }
    const verb = entry.profile ? (entry.profile.id === profile.id ? 'changed' : `changed (id was ${entry.profile.id})`) : 'loaded';
    entry.profile = profile;
    entry.text = text;
    parsedWith.set(profile, this.registry);
    this.logger.info(`profile ${verb} from ${entry.file}`, { profile: profile.id, file: entry.file });
  }

  private registryChanged(entry: FileEntry): boolean {
    return entry.profile !== undefined && parsedWith.get(entry.profile) !== this.registry;
  }

  /** The profiles in effect: the last valid version of each file, the first file per id. */
  private recompute(): void {
    const next = new Map<string, Profile>();
    const owners = new Map<string, string>();
    for (const entry of [...this.entries.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
      if (!entry.profile) continue;
      const id = entry.profile.id;
      const owner = owners.get(id);
      if (owner) {
        if (entry.refusedBy !== owner) {
          entry.refusedBy = owner;
          this.logger.error(`${entry.file}: profile id "${id}" is already used by ${owner}; this file is refused (the first file in name order keeps the id)`, { profile: id, file: entry.file });
        }
        continue;
      }
      if (entry.refusedBy) {
        this.logger.info(`${entry.file} now provides profile ${id}`, { profile: id, file: entry.file });
        entry.refusedBy = undefined;
      }
      owners.set(id, entry.file);
      next.set(id, entry.profile);
    }
    const changed = next.size !== this.effective.size || [...next].some(([id, profile]) => this.effective.get(id) !== profile);
    this.effective = next;
    if (changed) this.options.onChange(next);
  }
}

/** The registry each profile was parsed with: a new registry (SIGHUP) means parsing again. */
const parsedWith = new WeakMap<Profile, Registry>();
