import type { Command } from 'commander';
import type { CliIo } from './cli';
import type { Config } from './config';
import { Daemon } from './daemon';

export interface DaemonCommandDeps {
  io: CliIo;
  /** The command line's config loader (it also points the command line's error log at the config's format). */
  withConfig(file: string | undefined, verbose?: boolean): Promise<Config>;
}

/** When the daemon has stopped but something still holds the event loop, exit anyway after this. */
const LINGER_MS = 10_000;

/** `sis-block-export run`: the daemon (daemon/daemon.ts). */
export function registerDaemonCommands(program: Command, { io, withConfig }: DaemonCommandDeps): void {
  program
    .command('run')
    .description(
      'Run the daemon: schedule every profile of the profiles directory by its cron expression, follow changes to that directory, '
        + 'reload on SIGHUP, stop on SIGTERM/SIGINT after running exports finish (config shutdownGrace). '
        + 'Under systemd (Type=notify) it reports readiness and status and pings the watchdog.',
    )
    .option('--config <file>', 'config file (default /etc/sis-block-export/config.yaml, if present)')
    .option('--verbose', 'log at debug level')
    .addHelpText('after', '\nExit codes:\n  0  stopped by SIGTERM or SIGINT\n  1  unexpected error\n  2  invalid config or site rules at start')
    .action(async (opts: { config?: string; verbose?: boolean }) => {
      const config = await withConfig(opts.config, opts.verbose);
      const daemon = await Daemon.start({
        ...(opts.config === undefined ? {} : { configFile: opts.config }),
        config,
        env: io.env,
        stderr: io.stderr,
        verbose: opts.verbose ?? false,
        clock: io.clock,
      });
      await daemon.finished;
      if (io.stderr === process.stderr) {
        // A connection a driver failed to close must not keep a stopped daemon alive: systemd
        // would kill it after TimeoutStopSec and record a failure. Unref'd: a clean exit is not delayed.
        setTimeout(() => process.exit(process.exitCode ?? 0), LINGER_MS).unref();
      }
    });
}
