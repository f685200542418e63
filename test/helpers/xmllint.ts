/**
 * Test helpers around the independent `xmllint` (package libxml2-utils): XSD validation
 * and canonicalization of export files.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import { packageRoot } from '../../daemon/paths';

/** The repository's export schema, `daemon/user-blocks-1.xsd`. */
export function defaultXsdPath(): string {
  return path.join(packageRoot, 'daemon', 'user-blocks-1.xsd');
}

/** Full path of `name` on PATH, or undefined. */
export function findTool(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Throws a clear error when the command `name` is not on PATH. */
export function requireTool(name: string, hint?: string): string {
  const found = findTool(name);
  if (found === undefined) {
    const install = hint ?? (name === 'xmllint' ? ' (install it with: apt-get install -y libxml2-utils)' : '');
    throw new Error(`required tool "${name}" is not on PATH${install}`);
  }
  return found;
}

interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(command: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof (error as NodeJS.ErrnoException).code === 'string') {
        reject(error); // could not start (ENOENT, ...)
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

/**
 * `xmllint --noout --schema XSD FILE`. `ok` is true only when xmllint exits 0 and reports
 * the file valid; `output` is everything it printed.
 */
export async function xmllintValidate(file: string, xsd: string = defaultXsdPath()): Promise<{ ok: boolean; output: string }> {
  requireTool('xmllint');
  const result = await run('xmllint', ['--noout', '--schema', xsd, file]);
  const output = (result.stdout.toString('utf8') + result.stderr).trim();
  return { ok: result.code === 0 && /\bvalidates\b/.test(output), output };
}

/**
 * `xmllint --exc-c14n FILE` (or `--c14n` when `exclusive` is false): the canonical form of
 * the document, as raw bytes. Throws when xmllint fails.
 */
export async function xmllintCanonical(file: string, exclusive = true): Promise<Buffer> {
  requireTool('xmllint');
  const result = await run('xmllint', [exclusive ? '--exc-c14n' : '--c14n', file]);
  if (result.code !== 0) {
    throw new Error(`xmllint ${exclusive ? '--exc-c14n' : '--c14n'} ${file} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
