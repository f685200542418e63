/**
 * Runs one `sis-block-export` command in this process and records what it cost, for
 * test/bench/export-bench.ts (GNU /usr/bin/time is not installed everywhere).
 *
 *   node dist/test/bench/measure-child.js RUSAGE_FILE -- <sis-block-export arguments...>
 *
 * The CLI's own stdout and stderr pass through untouched; the measurements are written as
 * one JSON object to RUSAGE_FILE (and as a `sbe-bench-rusage {...}` line on stderr when no
 * file is given), after the command has finished:
 *   exitCode, maxRssKiB (process.resourceUsage().maxRSS: the peak resident set of this
 *   process), userCpuMs, systemCpuMs, mainMs (wall time of main()), startupMs (node start
 *   until main() was called, module loading included), heapUsedMiB, fsReadBlocks and
 *   fsWriteBlocks (ru_inblock/ru_oublock: on Linux, bytes read from/written to storage / 512).
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { main } from '../../daemon/cli';

export interface ChildMeasurement {
  exitCode: number;
  maxRssKiB: number;
  userCpuMs: number;
  systemCpuMs: number;
  mainMs: number;
  startupMs: number;
  heapUsedMiB: number;
  fsReadBlocks: number;
  fsWriteBlocks: number;
}

async function run(): Promise<void> {
  const args = process.argv.slice(2);
  const dashes = args.indexOf('--');
  const rusageFile = dashes > 0 ? args[0] : undefined;
  const cliArgs = dashes >= 0 ? args.slice(dashes + 1) : args;
  // performance.now() counts from the start of this process: node start-up plus module loading.
  const startupMs = performance.now();
  const started = startupMs;
  let exitCode: number;
  try {
    exitCode = await main(cliArgs, { stdout: process.stdout, stderr: process.stderr, env: process.env, clock: () => new Date() });
  } catch (error) {
    process.stderr.write(`measure-child: ${(error as Error)?.stack ?? String(error)}\n`);
    exitCode = 1;
  }
  const mainMs = performance.now() - started;
  const usage = process.resourceUsage();
  const result: ChildMeasurement = {
    exitCode,
    maxRssKiB: usage.maxRSS,
    userCpuMs: usage.userCPUTime / 1000,
    systemCpuMs: usage.systemCPUTime / 1000,
    mainMs,
    startupMs,
    heapUsedMiB: process.memoryUsage().heapUsed / 1048576,
    fsReadBlocks: usage.fsRead,
    fsWriteBlocks: usage.fsWrite,
  };
  if (rusageFile) fs.writeFileSync(rusageFile, `${JSON.stringify(result)}\n`);
  else process.stderr.write(`sbe-bench-rusage ${JSON.stringify(result)}\n`);
  process.exitCode = exitCode;
}

void run();
