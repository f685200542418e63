/**
 * Cron scheduling of profiles. croner only computes occurrences (5 fields, or 6 with seconds
 * first, in the profile's time zone); the timers are ours, so that a tick carries its exact
 * scheduled time (the run time of the export) and a profile never runs twice at once.
 */
import { Cron } from 'croner';
import type { Logger } from './logger';
import type { Profile } from './profiles';

/** setTimeout cannot wait longer than 2^31-1 ms; a far tick is reached in steps of this. */
const MAX_TIMER_MS = 60 * 60 * 1000;
/** A timer that wakes this much before its tick (clock adjustments) is armed again. */
const EARLY_TOLERANCE_MS = 20;

function cronOf(schedule: string, timezone: string): Cron {
  return new Cron(schedule, { paused: true, timezone });
}

/** The first occurrence strictly after `after`. */
export function nextOccurrence(schedule: string, timezone: string, after: Date): Date | undefined {
  return cronOf(schedule, timezone).nextRun(after) ?? undefined;
}

/** The latest occurrence strictly before `before`. */
export function previousOccurrence(schedule: string, timezone: string, before: Date): Date | undefined {
  return cronOf(schedule, timezone).previousRuns(1, before)[0];
}

/**
 * The run missed while the daemon was down: the latest occurrence before `now`, when it is
 * later than the last scheduled run the ledger knows. A profile without any scheduled run in
 * the ledger has missed nothing (it was never scheduled before; it just starts its schedule).
 */
export function missedOccurrence(profile: Pick<Profile, 'schedule' | 'timezone'>, lastScheduled: Date | undefined, now: Date): Date | undefined {
  if (!profile.schedule || !lastScheduled) return undefined;
  const previous = previousOccurrence(profile.schedule, profile.timezone, now);
  return previous && previous.getTime() > lastScheduled.getTime() ? previous : undefined;
}

/** Calls `onTick(tick)` at every occurrence of a cron schedule until stopped. */
export class CronTimer {
  private readonly cron: Cron;
  private timer: NodeJS.Timeout | undefined;
  private next: Date | undefined;
  private stopped = true;

  constructor(
    readonly schedule: string,
    readonly timezone: string,
    private readonly onTick: (tick: Date) => void,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.cron = cronOf(schedule, timezone);
  }

  /** The next tick, while running. */
  get nextTick(): Date | undefined {
    return this.next;
  }

  start(): void {
    this.stopped = false;
    this.arm(this.clock());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.next = undefined;
  }

  /** Arms the timer for the first occurrence after `after`. Ticks missed by a stalled loop are not made up. */
  private arm(after: Date): void {
    if (this.stopped) return;
    const now = this.clock();
    this.next = this.cron.nextRun(after.getTime() > now.getTime() ? after : now) ?? undefined;
    if (!this.next) return;
    this.wait();
  }

  private wait(): void {
    const next = this.next!;
    const delay = next.getTime() - this.clock().getTime();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      if (this.clock().getTime() < next.getTime() - EARLY_TOLERANCE_MS) {
        this.wait();
        return;
      }
      this.arm(next);
      this.onTick(next);
    }, Math.min(Math.max(delay, 0), MAX_TIMER_MS));
  }
}

export interface SchedulerDeps {
  logger: Logger;
  clock?: () => Date;
  /** One scheduled run of the profile at `tick`; it logs its own failures. */
  runScheduled(profile: Profile, tick: Date): Promise<void>;
  /** Called whenever the set of running profiles changes. */
  onActivity?(running: readonly string[]): void;
}

interface Entry {
  profile: Profile;
  timer?: CronTimer;
}

/**
 * Keeps one cron timer per scheduled profile and runs at most one task per profile at a time
 * (scheduled runs, and the resume work at start). A tick that comes while the profile's
 * previous task is still running is skipped and logged at warning.
 */
export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly running = new Map<string, { label: string; done: Promise<void> }>();
  private readonly clock: () => Date;

  constructor(private readonly deps: SchedulerDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  /** Adds or replaces a profile. Its timer is kept when the schedule and zone are unchanged. */
  set(profile: Profile): void {
    const entry = this.entries.get(profile.id);
    if (entry && entry.timer && entry.timer.schedule === profile.schedule && entry.timer.timezone === profile.timezone) {
      entry.profile = profile;
      return;
    }
    entry?.timer?.stop();
    const next: Entry = { profile };
    if (profile.schedule) {
      next.timer = new CronTimer(profile.schedule, profile.timezone, (tick) => this.tick(profile.id, tick), this.clock);
      next.timer.start();
    }
    this.entries.set(profile.id, next);
  }

  /** Stops scheduling a profile; a run in progress finishes. */
  remove(profileId: string): void {
    this.entries.get(profileId)?.timer?.stop();
    this.entries.delete(profileId);
  }

  has(profileId: string): boolean {
    return this.entries.has(profileId);
  }

  nextTick(profileId: string): Date | undefined {
    return this.entries.get(profileId)?.timer?.nextTick;
  }

  /** The next tick of every scheduled profile, soonest first. */
  upcoming(): { profileId: string; tick: Date }[] {
    return [...this.entries]
      .flatMap(([profileId, entry]) => (entry.timer?.nextTick ? [{ profileId, tick: entry.timer.nextTick }] : []))
      .sort((a, b) => a.tick.getTime() - b.tick.getTime());
  }

  /** Stops every timer; running tasks go on (see `idle`). */
  stop(): void {
    for (const entry of this.entries.values()) entry.timer?.stop();
    this.entries.clear();
  }

  runningProfiles(): string[] {
    return [...this.running.keys()].sort();
  }

  /** Resolves when no task is running. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()].map((run) => run.done));
  }

  /**
   * Runs `task` as the profile's only task. Returns false (and runs nothing) when the profile
   * already has one. The task must not throw; a throw is logged as an unexpected error.
   */
  runExclusive(profileId: string, label: string, task: () => Promise<void>): boolean {
    if (this.running.has(profileId)) return false;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    // Registered before the task starts: a task that finishes synchronously must not leave
    // a stale entry behind.
    this.running.set(profileId, { label, done });
    this.deps.onActivity?.(this.runningProfiles());
    void (async () => {
      try {
        await task();
      } catch (error) {
        this.deps.logger.error(`unexpected error in ${label}: ${(error as Error)?.stack ?? String(error)}`, { profile: profileId });
      } finally {
        this.running.delete(profileId);
        release();
        this.deps.onActivity?.(this.runningProfiles());
      }
    })();
    return true;
  }

  private tick(profileId: string, tick: Date): void {
    const entry = this.entries.get(profileId);
    if (!entry) return;
    const profile = entry.profile;
    const started = this.runExclusive(profileId, `the scheduled run at ${tick.toISOString()}`, () => this.deps.runScheduled(profile, tick));
    if (!started) {
      const busy = this.running.get(profileId)!;
      this.deps.logger.warn(`tick at ${tick.toISOString()} skipped: ${busy.label} is still running (runs of a profile never overlap)`, { profile: profileId, tick: tick.toISOString() });
    }
  }
}
