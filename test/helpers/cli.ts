import { spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { main } from '../../daemon/cli';
import { packageRoot } from '../../daemon/paths';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

class TextSink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

/**
 * Runs the CLI in this process. `env` replaces the environment entirely (so no system config
 * or state directory leaks in); a missing SIS_BLOCK_EXPORT_CONFIG points at no file.
 */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv, clock: () => Date = () => new Date()): Promise<CliResult> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const code = await main(args, {
    stdout,
    stderr,
    env: { SIS_BLOCK_EXPORT_CONFIG: '/nonexistent/sis-block-export/config.yaml', ...env },
    clock,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

export const BIN = path.join(packageRoot, 'bin', 'sis-block-export');

/** Runs the real executable as a child process. */
export function runBin(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [...args], { env: { PATH: process.env.PATH, SIS_BLOCK_EXPORT_CONFIG: '/nonexistent/config.yaml', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
