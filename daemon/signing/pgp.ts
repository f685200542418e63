import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { SbeError } from '../errors';
import { syncDirectory } from '../outputFile';
import { readKeyFile, readPassphraseFile } from './keys';

/**
 * OpenPGP detached signatures (SPEC 6, optional): `FILE.asc`, ASCII-armored, a binary-mode
 * (type 0x00) signature over the file's exact bytes, which `gpg --verify FILE.asc FILE`
 * accepts. The file is streamed through the hash, never read whole.
 */

/** The companion signature file of `file`. */
export function ascPathOf(file: string): string {
  return `${file}.asc`;
}

const GENERATE_HINT = 'create one with "sis-block-export keys generate --out DIR --pgp --name NAME --email EMAIL"';

/** A short description of a key for messages and output: fingerprint and first user id. */
export function describePgpKey(key: openpgp.Key): string {
  const userId = key.getUserIDs()[0];
  return `${key.getFingerprint().toUpperCase()}${userId ? ` ${userId}` : ''}`;
}

/**
 * Loads an armored OpenPGP secret key (decrypting it with the passphrase file when it is
 * encrypted) and checks it has a usable signing key. Problems are KEY_INVALID naming the file.
 */
export async function loadPgpSigningKey(file: string, passphraseFile?: string): Promise<openpgp.PrivateKey> {
  const armored = await readKeyFile(file, 'OpenPGP secret key');
  if (armored.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----') && !armored.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
    throw new SbeError('KEY_INVALID', `OpenPGP key ${file} is a public key; output.signing.pgpKey must name the secret key (pgp-secret.asc), the public one goes to the SIS`);
  }
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (error) {
    throw new SbeError('KEY_INVALID', `OpenPGP key ${file} is not an armored OpenPGP secret key ("-----BEGIN PGP PRIVATE KEY BLOCK-----"); export it with "gpg --armor --export-secret-keys" or ${GENERATE_HINT}`, { cause: error });
  }
  if (!key.isDecrypted()) {
    if (!passphraseFile) throw new SbeError('KEY_INVALID', `OpenPGP key ${file} is protected by a passphrase; name a file holding it in output.signing.passphraseFile`);
    const passphrase = await readPassphraseFile(passphraseFile, file);
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase });
    } catch (error) {
      throw new SbeError('KEY_INVALID', `OpenPGP key ${file} cannot be unlocked with the passphrase in ${passphraseFile}; check that file`, { cause: error });
    }
  }
  try {
    // Refuses expired, revoked and too weak keys (openpgp's minimum RSA size), and keys without a signing (sub)key.
    await key.getSigningKey();
  } catch (error) {
    throw new SbeError('KEY_INVALID', `OpenPGP key ${file} (${describePgpKey(key)}) cannot sign: ${(error as Error).message}; ${GENERATE_HINT}`, { cause: error });
  }
  return key;
}

/** Loads an armored OpenPGP public key (a secret key is refused: verifiers need only the public part). */
export async function loadPgpPublicKey(file: string): Promise<openpgp.Key> {
  const armored = await readKeyFile(file, 'OpenPGP public key');
  if (armored.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')) {
    throw new SbeError('KEY_INVALID', `OpenPGP key ${file} is a secret key; give the public key (pgp-public.asc, or "gpg --armor --export KEYID")`);
  }
  try {
    return await openpgp.readKey({ armoredKey: armored });
  } catch (error) {
    throw new SbeError('KEY_INVALID', `OpenPGP key ${file} is not an armored OpenPGP public key ("-----BEGIN PGP PUBLIC KEY BLOCK-----")`, { cause: error });
  }
}

/** Reads a string, bytes or a web stream of either to its end, handing each chunk to `sink`. */
async function drain(source: unknown, sink?: (chunk: string | Uint8Array) => Promise<void>): Promise<void> {
  if (typeof source === 'string' || source instanceof Uint8Array) {
    await sink?.(source);
    return;
  }
  if (!(source instanceof ReadableStream)) throw new TypeError(`openpgp returned an unexpected ${typeof source}`);
  const reader = (source as ReadableStream<string | Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    await sink?.(value);
  }
}

function fileStream(file: string): ReadableStream<Uint8Array> {
  return Readable.toWeb(fs.createReadStream(file, { highWaterMark: 256 * 1024 })) as ReadableStream<Uint8Array>;
}

/** Rejects early with a clear message, before openpgp turns a missing file into a stream error. */
async function requireFile(file: string, code: 'OUTPUT_WRITE' | 'SIGNATURE_INVALID'): Promise<void> {
  try {
    const stat = await fsp.stat(file);
    if (!stat.isFile()) throw new SbeError(code, `${file} is not a regular file`);
  } catch (error) {
    if (error instanceof SbeError) throw error;
    throw new SbeError(code, `${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}

/**
 * Writes `FILE.asc`, an armored detached signature of `file`, atomically (temp name, fsync,
 * rename). `key` is a path to an armored secret key or a key loaded with `loadPgpSigningKey`.
 * Returns the path of the `.asc`.
 */
export async function signDetached(file: string, key: string | openpgp.PrivateKey, passphraseFile?: string): Promise<string> {
  const signingKey = typeof key === 'string' ? await loadPgpSigningKey(key, passphraseFile) : key;
  await requireFile(file, 'OUTPUT_WRITE');
  const ascFile = ascPathOf(file);
  const tempFile = path.join(path.dirname(ascFile), `.${path.basename(ascFile)}.part`);
  try {
    const message = await openpgp.createMessage({ binary: fileStream(file) });
    // `openpgp.sign({ detached: true, format: 'armored' })` drives the hash by collecting the
    // whole message in memory (readToEnd). Asking for the signature object instead and
    // draining the message ourselves keeps memory flat: the hash reads a passive clone of
    // the file stream, fed as the message stream is read. At run time, with a streamed
    // message, the result is a Signature (the typings say Message) whose armor() and the
    // message's packets.write() are streams (the typings say string / Uint8Array).
    const signature = (await openpgp.sign({ message, signingKeys: signingKey, detached: true, format: 'object' })) as unknown as openpgp.Signature;
    const armored: unknown = signature.armor();
    const handle = await fsp.open(tempFile, 'w', 0o640);
    try {
      await Promise.all([
        drain(message.packets.write()),
        drain(armored, async (chunk) => {
          await handle.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
        }),
      ]);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tempFile, ascFile);
    await syncDirectory(path.dirname(ascFile));
  } catch (error) {
    await fsp.rm(tempFile, { force: true });
    if (error instanceof SbeError) throw error;
    throw new SbeError('OUTPUT_WRITE', `writing the OpenPGP signature ${ascFile}: ${(error as Error).message}`, { cause: error });
  }
  return ascFile;
}

export interface PgpVerifyResult {
  valid: true;
  /** Fingerprint and user id of the key that made the signature. */
  signer: string;
}

/**
 * Verifies the detached signature `ascFile` of `file` with the public key `publicKey` (a path
 * to an armored public key, or a loaded key). Every signature in the `.asc` must verify with
 * that key. Throws SIGNATURE_INVALID with the reason.
 */
export async function verifyDetached(file: string, ascFile: string, publicKey: string | openpgp.Key): Promise<PgpVerifyResult> {
  const verificationKey = typeof publicKey === 'string' ? await loadPgpPublicKey(publicKey) : publicKey;
  await requireFile(file, 'SIGNATURE_INVALID');
  let armoredSignature: string;
  try {
    armoredSignature = await fsp.readFile(ascFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SbeError('SIGNATURE_INVALID', `${file}: its OpenPGP signature ${ascFile} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`, { cause: error });
  }
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature });
  } catch (error) {
    throw new SbeError('SIGNATURE_INVALID', `${file}: ${ascFile} is not an armored OpenPGP signature: ${(error as Error).message}`, { cause: error });
  }
  try {
    const message = await openpgp.createMessage({ binary: fileStream(file) });
    const result = await openpgp.verify({ message, signature, verificationKeys: verificationKey, format: 'binary' });
    // The hash is computed as the data flows: drain it (without keeping it) before the verdicts settle.
    await drain(result.data);
    if (result.signatures.length === 0) throw new Error('the .asc holds no signature');
    for (const entry of result.signatures) await entry.verified;
  } catch (error) {
    throw new SbeError('SIGNATURE_INVALID', `${file}: the OpenPGP signature ${ascFile} does not verify with ${describePgpKey(verificationKey)}: ${(error as Error).message}`, { cause: error });
  }
  return { valid: true, signer: describePgpKey(verificationKey) };
}
