import { generateKeyPair as generateKeyPairCallback } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import * as openpgp from 'openpgp';
import { SbeError } from './errors';
import { MIN_RSA_BITS } from './signing/keys';

/**
 * `sis-block-export keys generate`: a signing key pair for XML-DSig (and optionally an
 * OpenPGP key pair for `.asc` signatures), written with modes that keep secrets secret.
 * Existing files are never overwritten: replacing a key the SIS trusts is a decision to make
 * by hand.
 */

const generateKeyPair = promisify(generateKeyPairCallback);

export type KeyType = 'rsa' | 'ecdsa';

export const DEFAULT_RSA_BITS = 3072;
export const MAX_RSA_BITS = 8192;
/** ECDSA uses NIST P-256 only: the curve XML-DSig verifiers (xmlsec1, Java, .NET) all support. */
export const ECDSA_BITS = 256;

export const KEY_FILE_NAMES = {
  privateKey: 'signing.pem',
  publicKey: 'signing.pub.pem',
  pgpSecretKey: 'pgp-secret.asc',
  pgpPublicKey: 'pgp-public.asc',
} as const;

const SECRET_MODE = 0o600;
const PUBLIC_MODE = 0o644;
const DIRECTORY_MODE = 0o700;

export interface GenerateKeysOptions {
  outDir: string;
  type: KeyType;
  /** RSA modulus size (default 3072, at least 2048); for ECDSA only 256 is accepted. */
  bits?: number;
  /** Also an OpenPGP key pair (same algorithm family) with this user id. */
  pgp?: { name: string; email: string };
}

export interface GeneratedKeys {
  /** Absolute paths of the files written. */
  privateKey: string;
  publicKey: string;
  pgpSecretKey?: string;
  pgpPublicKey?: string;
  /** Fingerprint of the OpenPGP key, upper-case hex. */
  pgpFingerprint?: string;
  type: KeyType;
  bits: number;
}

function checkedBits(type: KeyType, bits: number | undefined): number {
  if (type === 'ecdsa') {
    if (bits !== undefined && bits !== ECDSA_BITS) throw new SbeError('USAGE', `ECDSA keys are P-256 (256 bits); --bits ${bits} is not possible (leave it out, or use --type rsa)`);
    return ECDSA_BITS;
  }
  const size = bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(size) || size < MIN_RSA_BITS || size > MAX_RSA_BITS || size % 8 !== 0) {
    throw new SbeError('USAGE', `RSA keys need --bits between ${MIN_RSA_BITS} and ${MAX_RSA_BITS}, a multiple of 8 (3072 recommended), not ${bits}`);
  }
  return size;
}

function checkedUserId(pgp: { name: string; email: string }): { name: string; email: string } {
  const name = pgp.name.trim();
  const email = pgp.email.trim();
  if (name === '' || /[<>\p{Cc}]/u.test(name)) throw new SbeError('USAGE', `--name must be a non-empty name without "<", ">" or control characters, not ${JSON.stringify(pgp.name)}`);
  if (!/^[^\s@<>]+@[^\s@<>]+$/.test(email)) throw new SbeError('USAGE', `--email must be an e-mail address like library@example.edu, not ${JSON.stringify(pgp.email)}`);
  return { name, email };
}

async function ensureDirectory(dir: string): Promise<void> {
  try {
    const stat = await fs.stat(dir);
    if (!stat.isDirectory()) throw new SbeError('KEY_INVALID', `${dir} exists and is not a directory; choose another --out`);
  } catch (error) {
    if (error instanceof SbeError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new SbeError('KEY_INVALID', `cannot use ${dir}: ${(error as Error).message}`, { cause: error });
    await fs.mkdir(dir, { recursive: true, mode: DIRECTORY_MODE });
    await fs.chmod(dir, DIRECTORY_MODE); // mkdir's mode is filtered by the umask
  }
}

/** Writes a new file with exactly `mode` (not filtered by the umask); never replaces one. */
async function writeNewFile(file: string, content: string, mode: number): Promise<void> {
  const handle = await fs.open(file, 'wx', mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Generates the key files in `outDir` (created 0700 when missing): `signing.pem` (0600,
 * PKCS#8), `signing.pub.pem` (0644, SPKI) and with `pgp` `pgp-secret.asc` (0600, not
 * passphrase-protected) and `pgp-public.asc` (0644). Refuses (KEY_INVALID, exit 2) when any
 * of them exists, before writing anything.
 */
export async function generateKeys(options: GenerateKeysOptions): Promise<GeneratedKeys> {
  const bits = checkedBits(options.type, options.bits);
  const userId = options.pgp ? checkedUserId(options.pgp) : undefined;
  const outDir = path.resolve(options.outDir);
  const files = {
    privateKey: path.join(outDir, KEY_FILE_NAMES.privateKey),
    publicKey: path.join(outDir, KEY_FILE_NAMES.publicKey),
    ...(userId ? { pgpSecretKey: path.join(outDir, KEY_FILE_NAMES.pgpSecretKey), pgpPublicKey: path.join(outDir, KEY_FILE_NAMES.pgpPublicKey) } : {}),
  };
  await ensureDirectory(outDir);
  const existing: string[] = [];
  for (const file of Object.values(files)) {
    try {
      await fs.lstat(file);
      existing.push(file);
    } catch {
      // absent: fine
    }
  }
  if (existing.length > 0) {
    throw new SbeError('KEY_INVALID', `refusing to overwrite ${existing.join(', ')}; move the old key files away first (the SIS may still trust them), or choose another --out`);
  }

  const pair =
    options.type === 'rsa'
      ? await generateKeyPair('rsa', { modulusLength: bits, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
      : await generateKeyPair('ec', { namedCurve: 'prime256v1', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  let pgpPair: { privateKey: string; publicKey: string; fingerprint: string } | undefined;
  if (userId) {
    const generated = await openpgp.generateKey({
      ...(options.type === 'rsa' ? { type: 'rsa' as const, rsaBits: bits } : { type: 'ecc' as const, curve: 'nistP256' as const }),
      userIDs: [userId],
      format: 'armored',
    });
    const key = await openpgp.readKey({ armoredKey: generated.publicKey });
    pgpPair = { privateKey: generated.privateKey, publicKey: generated.publicKey, fingerprint: key.getFingerprint().toUpperCase() };
  }

  const writes: [file: string, content: string, mode: number][] = [
    [files.privateKey, pair.privateKey, SECRET_MODE],
    [files.publicKey, pair.publicKey, PUBLIC_MODE],
  ];
  if (pgpPair && files.pgpSecretKey && files.pgpPublicKey) {
    writes.push([files.pgpSecretKey, pgpPair.privateKey, SECRET_MODE], [files.pgpPublicKey, pgpPair.publicKey, PUBLIC_MODE]);
  }
  const written: string[] = [];
  try {
    for (const [file, content, mode] of writes) {
      await writeNewFile(file, content, mode);
      written.push(file);
    }
  } catch (error) {
    // All or nothing: half a key set would be mistaken for a usable one.
    for (const file of written) await fs.rm(file, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'EEXIST' ? 'a key file appeared meanwhile; nothing was overwritten' : (error as Error).message;
    throw new SbeError('KEY_INVALID', `writing the keys into ${outDir} failed: ${reason}`, { cause: error });
  }
  return {
    ...files,
    ...(pgpPair ? { pgpFingerprint: pgpPair.fingerprint } : {}),
    type: options.type,
    bits,
  };
}
