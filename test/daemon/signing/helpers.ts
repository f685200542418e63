import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { registerSigningCommands } from '../../../daemon/cliSigning';
import { ExitCode, SbeError, exitCodeOf } from '../../../daemon/errors';
import { loadSigningKey, type SigningKey } from '../../../daemon/signing/keys';
import type { XmlDsigKey } from '../../../daemon/signing/xmldsig';
import { ExportXmlWriter, type ExportHeader, type ExportSummary, type ExportUser } from '../../../daemon/xmlWriter';
import { requireTool } from '../../helpers/xmllint';

/** Shared fixtures of the signing tests: temp dirs, keys, exports from the real writer, the external tools. */

export const KEY_NAME = 'library-2026';

export const HEADER: ExportHeader = {
  currency: 'USD',
  generatedAt: '2026-12-04T02:00:00Z',
  matchIdType: 'STUDENT_ID',
  profile: 'main-campus',
  runId: 'main-campus-20261204T020000Z',
};

/** Everything C14N escapes, plus characters it must leave alone. */
export const TRICKY = `a&b<c>d"e'f\tg\rh\r\ni\nj ]]> 漢字 😀 𠀀 é &amp; end`;

export const USERS: ExportUser[] = [
  {
    userId: 'S0001',
    primaryId: 'jdoe',
    firstName: 'Jane',
    lastName: 'Doe',
    userGroup: 'UG',
    accountType: 'EXTERNAL',
    activeBalance: '12.50',
    blocks: [
      { blockType: 'CASH', description: 'Unpaid bill', createdDate: '2026-10-01T12:00:00Z', expiryDate: '2027-01-01T00:00:00Z', note: 'Call the patron' },
      { blockType: 'LOAN', createdDate: '2026-11-15T08:30:00Z' },
    ],
  },
  { userId: 'S0002', primaryId: 'asmith', accountType: 'INTERNAL', activeBalance: '0.00', blocks: [] },
  { userId: 'S0003', primaryId: 'bwong', firstName: 'Bo', lastName: 'Wong', accountType: 'EXTERNAL', activeBalance: '3.00', blocks: [] },
];

export const TRICKY_USERS: ExportUser[] = [
  {
    userId: `T${TRICKY}`,
    primaryId: TRICKY,
    firstName: `\r${TRICKY}\t`,
    lastName: '  spaces  ',
    userGroup: '漢字😀',
    accountType: 'EXTERNAL',
    activeBalance: '-3.00',
    blocks: [{ blockType: TRICKY, description: '\n\n', createdDate: '2026-10-01T12:00:00Z', note: `<![CDATA[x]]> <!-- c --> <?pi x?> &entity; ${TRICKY}` }],
  },
];

/** An unsigned export, chunk by chunk as the writer makes them: [prolog, body chunks..., close]. */
export function exportChunks(users: readonly ExportUser[], header: ExportHeader = HEADER): { prolog: string; body: string[]; close: string } {
  const writer = new ExportXmlWriter();
  const body = [writer.open(header), ...users.map((user) => writer.user(user))];
  const blocks = users.reduce((sum, user) => sum + user.blocks.length, 0);
  const summary: ExportSummary = { users: users.length, blocks, activeBalanceTotal: '12.50', skippedMissingMatchId: 0 };
  body.push(writer.summary(summary));
  return { prolog: writer.prolog(), body, close: writer.close() };
}

export function unsignedExport(users: readonly ExportUser[], header: ExportHeader = HEADER): string {
  const { prolog, body, close } = exportChunks(users, header);
  return prolog + body.join('') + close;
}

export function tempDir(prefix = 'sbe-sign-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface KeyFiles {
  dir: string;
  privateKey: string;
  publicKey: string;
  key: SigningKey;
  signing: XmlDsigKey;
  publicKeyObject: KeyObject;
}

/** A fresh key pair on disk (PKCS#8 / SPKI PEM), loaded through the real loader. */
export async function makeKeyFiles(type: 'rsa' | 'ec', dir: string = tempDir()): Promise<KeyFiles> {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const privateKey = path.join(dir, `${type}.pem`);
  const publicKey = path.join(dir, `${type}.pub.pem`);
  fs.writeFileSync(privateKey, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(publicKey, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  const key = await loadSigningKey(privateKey);
  return { dir, privateKey, publicKey, key, signing: { key, keyName: KEY_NAME }, publicKeyObject: pair.publicKey };
}

export interface ToolResult {
  code: number;
  output: string;
}

export function runTool(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<ToolResult> {
  requireTool(command, ` (install it with: apt-get install -y ${command === 'xmlsec1' ? 'xmlsec1' : command === 'gpg' ? 'gnupg' : 'libxml2-utils'})`);
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof (error as NodeJS.ErrnoException).code === 'string') return reject(error);
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/**
 * The independent check SPEC 6 names. `--enabled-reference-uris empty` allows only URI="";
 * `--enabled-key-data key-name` makes xmlsec1 ignore any key material in the file.
 */
export function xmlsecVerify(file: string, publicKey: string, keyName: string = KEY_NAME): Promise<ToolResult> {
  return runTool('xmlsec1', ['--verify', '--enabled-reference-uris', 'empty', '--enabled-key-data', 'key-name', `--pubkey-pem:${keyName}`, publicKey, file]);
}

export function writeTemp(dir: string, name: string, content: string | Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

export async function expectRejection(promise: Promise<unknown>): Promise<SbeError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SbeError) return error;
    throw error;
  }
  throw new Error('expected an SbeError, but the call succeeded');
}

class TextSink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
}

/**
 * Runs the signing commands on a program built like cli.ts builds its own (exitOverride,
 * SbeError -> exit code), until cli.ts registers them.
 */
export async function runSigningCli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string; error?: unknown }> {
  const stdout = new TextSink();
  const stderr = new TextSink();
  const program = new Command('sis-block-export')
    .exitOverride()
    .configureOutput({ writeOut: (s) => stdout.write(s), writeErr: (s) => stderr.write(s) });
  registerSigningCommands(program, { stdout, stderr });
  try {
    await program.parseAsync([...args], { from: 'user' });
    return { code: ExitCode.ok, stdout: stdout.text, stderr: stderr.text };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode === 0 ? 0 : ExitCode.invalidInput, stdout: stdout.text, stderr: stderr.text, error };
    if (error instanceof SbeError) stderr.write(`${error.describe()}\n`);
    return { code: exitCodeOf(error), stdout: stdout.text, stderr: stderr.text, error };
  }
}
