/**
 * The daemon (`sis-block-export run`): schedules every profile of the profiles directory,
 * follows changes to that directory, reloads on SIGHUP, stops gracefully on SIGTERM/SIGINT
 * and talks to systemd (readiness, status, watchdog).
 *
 * Start-up, in order:
 *   1. config, site rules, ledger; every profile file (invalid ones are logged and skipped);
 *   2. runs a crash left in `building` are marked interrupted;
 *   3. each distinct source database is asked `select 1` (one that does not answer is logged
 *      at error; the daemon still starts: its runs fail and the next tick tries again);
 *   4. each profile is scheduled and, as its first task, resumed: a scheduled run missed while
 *      the daemon was down runs once now (its snapshot supersedes older pending ones); else
 *      the newest interrupted run is rebuilt; else a pending delivery is delivered;
 *   5. READY=1.
 */
import { loadConfig, type Config } from './config';
import { checkConnection, openDatabase, type DatabaseTarget } from './database';
import { parseDuration } from './duration';
import { ErrorCodes, SbeError, exitCodeOf } from './errors';
import { deliverPending, runExport, sourceTarget } from './exporter';
import { Ledger, type RunRecord } from './ledger';
import { createReconfigurableLogger, defaultLogFormat, type LoggerOptions, type LogLevel, type ReconfigurableLogger } from './logger';
import { ProfileWatcher } from './profileWatcher';
import type { Profile } from './profiles';
import { loadRegistry, type Registry } from './registry';
import { missedOccurrence, Scheduler } from './scheduler';
import { createNotifier, monotonicUsec, startWatchdog, type Notifier } from './systemd';
import { compactTimestamp } from './timestamps';

export interface DaemonOptions {
  /** `--config FILE`; undefined means `$SIS_BLOCK_EXPORT_CONFIG` or the default file. */
  configFile?: string;
  /** The configuration already loaded by the command line. */
  config: Config;
  env: NodeJS.ProcessEnv;
  stderr: NodeJS.WritableStream;
  /** Log at debug level whatever the config says (`--verbose`). */
  verbose?: boolean;
  clock?: () => Date;
  /** Handle SIGTERM, SIGINT and SIGHUP of this process. Default true. */
  handleSignals?: boolean;
  /** Tuning for tests: profile directory rescan and settle times. */
  watcher?: { rescanMs?: number; stableMs?: number; settleMs?: number };
}

/** How long an interrupted export may take to wind down after the grace period. */
const ABORT_WAIT_MS = 15_000;
/** A source that has not answered by then counts as not answering (readiness is not held up longer). */
const SOURCE_CHECK_MS = 15_000;

function delay(ms: number): { promise: Promise<void>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

function describeError(error: unknown): string {
  if (error instanceof SbeError) return error.describe();
  return (error as Error)?.stack ?? String(error);
}

export class Daemon {
  private config: Config;
  private registry!: Registry;
  private ledger!: Ledger;
  private readonly logger: ReconfigurableLogger;
  private readonly notifier: Notifier;
  private readonly scheduler: Scheduler;
  private watcher: ProfileWatcher | undefined;
  private readonly clock: () => Date;
  private readonly abort = new AbortController();
  private profiles = new Map<string, Profile>();
  private started = false;
  private stopping = false;
  private reloading: Promise<void> | undefined;
  private reloadQueued = false;
  private stopRequested: string | undefined;
  private watchdog: { stop(): void } = { stop: () => undefined };
  private readonly signalHandlers: [NodeJS.Signals, () => void][] = [];
  private resolveFinished!: () => void;
  /** Resolves when the daemon has stopped. */
  readonly finished: Promise<void>;

  private constructor(private readonly options: DaemonOptions) {
    this.config = options.config;
    this.clock = options.clock ?? (() => new Date());
    this.logger = createReconfigurableLogger(this.loggerOptions(options.config));
    this.notifier = createNotifier(options.env, { logger: this.logger });
    this.scheduler = new Scheduler({
      logger: this.logger,
      clock: this.clock,
      runScheduled: (profile, tick) => this.runScheduled(profile, tick),
      onActivity: () => this.reportStatus(),
    });
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  /** Starts the daemon; resolves once it is ready (READY=1 sent). */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const daemon = new Daemon(options);
    await daemon.startUp();
    return daemon;
  }

  private loggerOptions(config: Config): LoggerOptions {
    const level: LogLevel = this.options.verbose ? 'debug' : config.log.level;
    return { stream: this.options.stderr, level, format: config.log.format ?? defaultLogFormat(this.options.env) };
  }

  private async startUp(): Promise<void> {
    if (this.options.handleSignals !== false) this.installSignalHandlers();
    this.watchdog = startWatchdog(this.notifier, this.options.env);
    this.notifier.notify({ STATUS: 'starting: loading the configuration and profiles' });
    const config = this.config;
    this.logger.info(`starting: config ${config.file ?? '(none; defaults)'}, profiles ${config.profilesDir}, state ${config.stateDir}`);
    let profiles: ReadonlyMap<string, Profile>;
    try {
      this.registry = await loadRegistry(config.rulesDir);
      this.ledger = await Ledger.open(config.stateDir, config.ledger ? { url: config.ledger } : {});
      this.watcher = new ProfileWatcher({
        dir: config.profilesDir,
        registry: this.registry,
        logger: this.logger,
        onChange: (next) => {
          if (this.started && !this.stopping) this.applyProfiles(next, false);
        },
        ...this.options.watcher,
      });
      await this.watcher.start();
      await this.recoverCrashedRuns();
      profiles = this.watcher.profiles;
      await this.checkSources([...profiles.values()]);
    } catch (error) {
      // Nothing may keep the event loop alive after a failed start: the command exits with its code.
      this.watcher?.stop();
      await this.ledger?.close().catch(() => undefined);
      this.cleanUp();
      throw error;
    }
    this.started = true;
    if (this.stopRequested) {
      // Stopped before it was ready: nothing is scheduled or resumed.
      void this.shutdown(this.stopRequested);
      return;
    }
    this.applyProfiles(profiles, true);
    this.logger.info(`ready: ${profiles.size} profile(s) in effect, ${[...profiles.values()].filter((p) => p.schedule).length} scheduled`);
    this.notifier.notify({ READY: 1, STATUS: this.statusText() });
    if (this.reloadQueued) void this.reload();
  }

  private installSignalHandlers(): void {
    const on = (signal: NodeJS.Signals, handler: () => void) => {
      process.on(signal, handler);
      this.signalHandlers.push([signal, handler]);
    };
    on('SIGTERM', () => this.requestStop('SIGTERM'));
    on('SIGINT', () => this.requestStop('SIGINT'));
    on('SIGHUP', () => void this.reload());
  }

  /** A stop asked for during start-up waits until the start is complete (then nothing half-built is left). */
  private requestStop(reason: string): void {
    if (this.started) void this.shutdown(reason);
    else this.stopRequested ??= reason;
  }

  /** Runs a crash (or kill -9) left in `building` are cut short: rebuilt at resume. */
  private async recoverCrashedRuns(): Promise<void> {
    for (const run of await this.ledger.unfinishedRuns()) {
      if (run.state !== 'building') continue; // `delivering` is simply pending: transports replace their temp files
      // With a shared ledger another live instance may be building it right now: only a run
      // whose profile lock is free was really cut short.
      const marked = await this.ledger.withProfileLock(run.profileId, async () => {
        const current = await this.ledger.get(run.runId);
        if (current?.state !== 'building') return false;
        await this.ledger.markInterrupted(run.runId, 'cut short by a crash or kill while building; rebuilt at the next start');
        return true;
      });
      if (marked?.value) this.logger.warn('run left in building by a crash: marked interrupted, it is rebuilt', { profile: run.profileId, run: run.runId });
    }
  }

  /** `select 1` on each distinct source; one that does not answer is logged and does not stop the start. */
  private async checkSources(profiles: readonly Profile[]): Promise<void> {
    const targets = new Map<string, { target: DatabaseTarget; profiles: string[] }>();
    for (const profile of profiles) {
      try {
        const target = sourceTarget(profile, this.config);
        const known = targets.get(target.redacted);
        if (known) known.profiles.push(profile.id);
        else targets.set(target.redacted, { target, profiles: [profile.id] });
      } catch (error) {
        this.logger.error(`the source of profile ${profile.id} cannot be used: ${describeError(error)}`, { profile: profile.id, code: (error as SbeError).code });
      }
    }
    await Promise.all([...targets.values()].map(async ({ target, profiles: users }) => {
      let db: ReturnType<typeof openDatabase> | undefined;
      const timeout = delay(SOURCE_CHECK_MS);
      try {
        db = openDatabase(target, { create: false });
        const check = checkConnection(db, target);
        await Promise.race([
          check,
          timeout.promise.then(() => {
            throw new SbeError('SOURCE_CONNECT', `${target.redacted} did not answer within ${SOURCE_CHECK_MS / 1000} s`);
          }),
        ]);
        this.logger.info(`source ${target.redacted} answers`, { profiles: users.join(',') });
      } catch (error) {
        this.logger.error(
          `source ${target.redacted} does not answer: ${describeError(error)}; runs of ${users.join(', ')} fail until it does (each tick tries again)`,
          { profiles: users.join(','), code: error instanceof SbeError ? error.code : 'SOURCE_CONNECT', exit: 3 },
        );
      } finally {
        timeout.cancel();
        await db?.destroy().catch(() => undefined);
      }
    }));
  }

  /** Schedules the profiles in effect; a new profile is resumed first. */
  private applyProfiles(profiles: ReadonlyMap<string, Profile>, atStart: boolean): void {
    if (this.stopping) return;
    for (const id of [...this.profiles.keys()]) {
      if (profiles.has(id)) continue;
      this.scheduler.remove(id);
      this.profiles.delete(id);
      this.logger.info('profile removed: no further runs (a run in progress finishes)', { profile: id });
    }
    for (const [id, profile] of profiles) {
      const previous = this.profiles.get(id);
      if (previous === profile) continue;
      this.profiles.set(id, profile);
      this.scheduler.set(profile);
      const next = this.scheduler.nextTick(id);
      const when = profile.schedule ? `schedule "${profile.schedule}" (${profile.timezone}), next run ${next?.toISOString() ?? 'never'}` : 'no schedule: runs only with "sis-block-export export"';
      this.logger.info(`profile ${previous ? 'updated' : 'scheduled'}: ${when}`, { profile: id, file: profile.file });
      if (!previous) {
        this.scheduler.runExclusive(id, atStart ? 'the resume at start' : 'the resume of a new profile', () => this.resume(profile, atStart));
      }
    }
    if (this.started) this.reportStatus();
  }

  private runDeps() {
    return { config: this.config, logger: this.logger, ledger: this.ledger, signal: this.abort.signal };
  }

  private async runScheduled(profile: Profile, tick: Date): Promise<void> {
    try {
      await runExport({ ...this.runDeps(), profile, now: tick, scheduled: true });
    } catch (error) {
      await this.reportFailure('scheduled run', profile.id, error, { runTime: tick });
    }
  }

  /** The first task of a profile: a missed run, else an interrupted rebuild, else a pending delivery. */
  private async resume(profile: Profile, catchUp: boolean): Promise<void> {
    const log = this.logger.child({ profile: profile.id });
    if (catchUp && profile.schedule) {
      const now = this.clock();
      const last = await this.ledger.lastScheduledRunTime(profile.id);
      const missed = missedOccurrence(profile, last, now);
      if (missed) {
        log.info(`the scheduled run at ${missed.toISOString()} was missed while the daemon was down (last scheduled run ${last!.toISOString()}): running it now`);
        try {
          await runExport({ ...this.runDeps(), profile, now: missed, scheduled: true });
        } catch (error) {
          await this.reportFailure('missed scheduled run', profile.id, error, { runTime: missed });
        }
        return;
      }
    }
    const interrupted = (await this.ledger.interruptedRuns(profile.id)).at(-1);
    const pending = await this.ledger.pendingDelivery(profile.id);
    const deliverable = pending && pending.files.length > 0 ? pending : undefined;
    if (interrupted && (!deliverable || interrupted.runTime.getTime() >= deliverable.runTime.getTime())) {
      log.info(`rebuilding the interrupted run (run time ${interrupted.runTime.toISOString()})`, { run: interrupted.runId });
      try {
        await runExport({ ...this.runDeps(), profile, runId: interrupted.runId, now: interrupted.runTime, scheduled: interrupted.scheduled });
      } catch (error) {
        await this.reportFailure('rebuild of the interrupted run', profile.id, error, { runId: interrupted.runId });
      }
      return;
    }
    if (deliverable) {
      log.info(`delivering the snapshot left pending (state ${deliverable.state})`, { run: deliverable.runId });
      try {
        await deliverPending(profile, this.runDeps());
      } catch (error) {
        await this.reportFailure('delivery of the pending snapshot', profile.id, error, { runId: deliverable.runId });
      }
    }
  }

  /**
   * One line per failed run with profile=, run=, the error code and its exit class; the daemon
   * carries on. runExport has already logged the details of a run it recorded, so the message
   * is repeated only when the run never reached the ledger.
   */
  private async reportFailure(what: string, profileId: string, error: unknown, run: { runTime?: Date; runId?: string }): Promise<void> {
    let runId = run.runId;
    let recorded = runId !== undefined;
    if (!runId && run.runTime) {
      const found: RunRecord | undefined = await this.ledger
        .recentRuns({ profileId, limit: 10 })
        .then((runs) => runs.find((r) => r.runTime.getTime() === run.runTime!.getTime()))
        .catch(() => undefined);
      recorded = found !== undefined;
      // No ledger row (the ledger itself failed): the id the run would have had.
      runId = found?.runId ?? `${profileId}-${compactTimestamp(run.runTime)}`;
    }
    const code = error instanceof SbeError ? error.code : 'INTERNAL';
    const fields = { profile: profileId, ...(runId ? { run: runId } : {}), code, exit: exitCodeOf(error) };
    if (this.abort.signal.aborted) {
      // runExport has logged the interruption at warning; the ledger resumes it at the next start.
      this.logger.info(`${what} cut short by the shutdown; it resumes at the next start`, fields);
      return;
    }
    const next = this.stopping ? undefined : this.scheduler.nextTick(profileId);
    const retry = next ? `; the next run is at ${next.toISOString()}` : '';
    const detail = recorded && error instanceof SbeError ? `${ErrorCodes[code as keyof typeof ErrorCodes].summary} (${code}, exit class ${exitCodeOf(error)})` : describeError(error);
    this.logger.error(`${what} failed: ${detail}${retry}`, fields);
  }

  private statusText(): string {
    if (this.stopping) {
      const running = this.scheduler.runningProfiles();
      return running.length ? `stopping: waiting for ${running.join(', ')}` : 'stopping';
    }
    const running = this.scheduler.runningProfiles();
    const next = this.scheduler.upcoming()[0];
    const parts = [`${this.profiles.size} profile(s)`];
    if (running.length) parts.push(`running ${running.join(', ')}`);
    if (next) parts.push(`next run ${next.profileId} at ${next.tick.toISOString()}`);
    return parts.join('; ');
  }

  private reportStatus(): void {
    if (this.started) this.notifier.notify({ STATUS: this.statusText() });
  }

  /** SIGHUP: config, site rules and every profile again. An invalid config keeps the old one. */
  async reload(): Promise<void> {
    if (this.stopping) return;
    if (!this.started) {
      this.reloadQueued = true;
      return;
    }
    if (this.reloading) {
      this.reloadQueued = true;
      return this.reloading;
    }
    this.reloadQueued = false;
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
      if (this.reloadQueued && !this.stopping) void this.reload();
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    this.notifier.notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading the configuration and profiles' });
    this.logger.info('reloading the configuration and profiles (SIGHUP)');
    let config = this.config;
    try {
      const next = await loadConfig(this.options.configFile, this.options.env);
      for (const key of ['stateDir', 'ledger'] as const) {
        if (next[key] !== this.config[key]) {
          this.logger.warn(`${key} changed to ${next[key] ?? '(default)'}: that takes a restart; still using ${this.config[key] ?? '(default)'}`);
        }
      }
      config = { ...next, stateDir: this.config.stateDir };
      if (this.config.ledger) config.ledger = this.config.ledger;
      else delete config.ledger;
    } catch (error) {
      this.logger.error(`the configuration is not reloaded, the previous one stays in effect: ${describeError(error)}`, { code: error instanceof SbeError ? error.code : 'INTERNAL' });
      config = this.config;
    }
    this.config = config;
    this.logger.reconfigure(this.loggerOptions(config));
    try {
      this.registry = await loadRegistry(config.rulesDir);
    } catch (error) {
      this.logger.error(`the site rules are not reloaded, the previous ones stay in effect: ${describeError(error)}`, { code: error instanceof SbeError ? error.code : 'INTERNAL' });
    }
    const watcher = this.watcher!; // set once started, and reloads wait for the start
    await watcher.reload({ dir: config.profilesDir, registry: this.registry });
    // The watcher reports changes itself; this covers a reload that changed nothing.
    this.applyProfiles(watcher.profiles, false);
    await this.checkSources([...watcher.profiles.values()]);
    this.logger.info(`reloaded: ${this.profiles.size} profile(s) in effect`);
    this.notifier.notify({ READY: 1, STATUS: this.statusText() });
  }

  /**
   * SIGTERM/SIGINT: no new runs; running exports get `shutdownGrace` to finish, then they are
   * aborted (recorded interrupted, partial files removed, rebuilt at the next start). A second
   * signal aborts at once.
   */
  async shutdown(reason: string): Promise<void> {
    if (this.stopping) {
      if (!this.abort.signal.aborted && this.scheduler.runningProfiles().length > 0) {
        this.logger.warn(`${reason} again: interrupting the running export(s) now`);
        this.abort.abort(new SbeError('ABORTED', `shutting down (${reason})`));
      }
      return this.finished;
    }
    this.stopping = true;
    this.logger.info(`${reason}: stopping; no new runs start`);
    this.notifier.notify({ STOPPING: 1, STATUS: 'stopping' });
    this.watcher?.stop();
    this.scheduler.stop();
    const running = this.scheduler.runningProfiles();
    if (running.length > 0) {
      let graceMs = 30_000;
      try {
        graceMs = parseDuration(this.config.shutdownGrace);
      } catch {
        // validated at load; the default otherwise
      }
      this.logger.info(`waiting up to ${graceMs / 1000} s (shutdownGrace) for ${running.join(', ')} to finish`);
      this.notifier.notify({ STATUS: this.statusText() });
      const grace = delay(graceMs);
      const finished = await Promise.race([this.scheduler.idle().then(() => true), grace.promise.then(() => false)]);
      grace.cancel();
      if (!finished) {
        const left = this.scheduler.runningProfiles();
        if (!this.abort.signal.aborted) {
          this.logger.warn(`shutdownGrace is over: interrupting ${left.join(', ')}; interrupted runs are rebuilt at the next start`);
          this.abort.abort(new SbeError('ABORTED', `shutting down (${reason}): shutdownGrace is over`));
        }
        const wait = delay(ABORT_WAIT_MS);
        const wound = await Promise.race([this.scheduler.idle().then(() => true), wait.promise.then(() => false)]);
        wait.cancel();
        if (!wound) {
          this.logger.error(`${this.scheduler.runningProfiles().join(', ')} did not stop within ${ABORT_WAIT_MS / 1000} s of being interrupted; exiting anyway (the ledger still says building: the run is rebuilt at the next start)`);
        }
      }
    }
    const closing = delay(5000);
    await Promise.race([this.ledger.close().catch(() => undefined), closing.promise]);
    closing.cancel();
    this.logger.info('stopped');
    this.cleanUp();
    await this.notifier.flush();
    this.resolveFinished();
  }

  private cleanUp(): void {
    this.watchdog.stop();
    for (const [signal, handler] of this.signalHandlers) process.off(signal, handler);
    this.signalHandlers.length = 0;
  }
}
