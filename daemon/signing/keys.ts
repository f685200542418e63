import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import { SbeError } from '../errors';

/**
 * Loading and checking the keys of XML-DSig signing and verification. Every problem is a
 * KEY_INVALID (exit 2) whose message names the file and says what to do. Messages never
 * carry key material or passphrases: OpenSSL's own error text is kept only as the `cause`.
 */

export type XmlDsigAlgorithm = 'rsa-sha256' | 'ecdsa-sha256';

/** A private key fit for XML-DSig, with the algorithm it signs with. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  algorithm: XmlDsigAlgorithm;
  /** The file it came from, for messages. */
  file: string;
}

/** RSA below this is refused: NIST SP 800-131A disallows RSA < 2048 for signatures. */
export const MIN_RSA_BITS = 2048;
/** OpenSSL's name of NIST P-256, the only curve XML-DSig verifiers reliably support. */
const P256 = 'prime256v1';

const GENERATE_HINT = 'create a key pair with "sis-block-export keys generate --out DIR"';

/** Reads a key-ish file as text; missing, directory and unreadable files become KEY_INVALID. */
export async function readKeyFile(file: string, what: string): Promise<string> {
  let buffer: Buffer;
  try {
    buffer = await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'does not exist' :
      code === 'EISDIR' ? 'is a directory, not a key file' :
      code === 'EACCES' || code === 'EPERM' ? `cannot be read by this user (${code}); check its owner and mode (0600, owned by the service user)` :
      `cannot be read (${code ?? (error as Error).message})`;
    const hint = code === 'ENOENT' || code === 'EISDIR' ? `; fix the path or ${GENERATE_HINT}` : '';
    throw new SbeError('KEY_INVALID', `${what} ${file} ${reason}${hint}`, { cause: error });
  }
  return buffer.toString('utf8');
}

/**
 * The first line of a passphrase file (a trailing newline is not part of the passphrase).
 * `keyFile` is the key it unlocks, named in messages.
 */
export async function readPassphraseFile(file: string, keyFile: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? 'error'})`;
    throw new SbeError('KEY_INVALID', `passphrase file ${file} (for the key ${keyFile}) ${reason}; fix output.signing.passphraseFile`, { cause: error });
  }
  const passphrase = text.split(/\r?\n/, 1)[0] ?? '';
  if (passphrase === '') throw new SbeError('KEY_INVALID', `passphrase file ${file} (for the key ${keyFile}) is empty; its first line must be the key's passphrase`);
  return passphrase;
}

/** The PEM labels (`-----BEGIN <label>-----`) in a text, in order. */
function pemLabels(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((match) => match[1]!);
}

function isEncryptedPem(text: string, labels: readonly string[]): boolean {
  return labels.includes('ENCRYPTED PRIVATE KEY') || /^Proc-Type:\s*4,\s*ENCRYPTED/m.test(text);
}

/**
 * The XML-DSig algorithm a key can sign or verify with, or a KEY_INVALID naming what is wrong
 * with it. `role` is "signing key" or "public key", for messages.
 */
export function xmlDsigAlgorithmOf(key: KeyObject, file: string, role: string): XmlDsigAlgorithm {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new SbeError('KEY_INVALID', `${role} ${file} is RSA with ${bits} bits; at least ${MIN_RSA_BITS} are required (3072 recommended): ${GENERATE_HINT}`);
    }
    return 'rsa-sha256';
  }
  if (type === 'ec') {
    if (details.namedCurve !== P256) {
      throw new SbeError('KEY_INVALID', `${role} ${file} is EC on curve ${details.namedCurve ?? 'unknown'}; XML-DSig signing supports only P-256 (prime256v1) or RSA: ${GENERATE_HINT}`);
    }
    return 'ecdsa-sha256';
  }
  const hint = type === 'rsa-pss' ? ' (an RSA-PSS-only key cannot make RSA-SHA256 PKCS#1 v1.5 signatures)' : '';
  throw new SbeError('KEY_INVALID', `${role} ${file} is a key of type ${type ?? 'unknown'}${hint}; XML-DSig signing supports RSA (>= ${MIN_RSA_BITS} bits) and EC P-256 keys: ${GENERATE_HINT}`);
}

/**
 * Loads the PEM private key of `output.signing.privateKey` and checks it can make the
 * signatures SPEC 6 asks for: RSA >= 2048 bits (RSA-SHA256) or EC P-256 (ECDSA-SHA256).
 */
export async function loadSigningKey(file: string, options: { passphraseFile?: string } = {}): Promise<SigningKey> {
  const text = await readKeyFile(file, 'signing key');
  const labels = pemLabels(text);
  if (labels.length === 0) {
    throw new SbeError('KEY_INVALID', `signing key ${file} is not a PEM file (no "-----BEGIN ...-----" line); give the PEM private key, or ${GENERATE_HINT}`);
  }
  const privateLabel = labels.find((label) => label.endsWith('PRIVATE KEY'));
  if (!privateLabel) {
    const found = labels[0]!;
    const what = found === 'CERTIFICATE' ? 'a certificate' : found.endsWith('PUBLIC KEY') ? 'a public key' : `a PEM "${found}" block`;
    throw new SbeError('KEY_INVALID', `signing key ${file} is ${what}, not a private key; output.signing.privateKey must name the private key (signing.pem), the public one goes to the SIS`);
  }
  const encrypted = isEncryptedPem(text, labels);
  let passphrase: string | undefined;
  if (encrypted) {
    if (!options.passphraseFile) {
      throw new SbeError('KEY_INVALID', `signing key ${file} is encrypted; name a file holding its passphrase in output.signing.passphraseFile`);
    }
    passphrase = await readPassphraseFile(options.passphraseFile, file);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(passphrase === undefined ? { key: text, format: 'pem' } : { key: text, format: 'pem', passphrase });
  } catch (error) {
    const message = encrypted
      ? `signing key ${file} cannot be decrypted with the passphrase in ${options.passphraseFile}; check that file`
      : `signing key ${file} is not a readable PEM private key; give an unencrypted PKCS#8 or traditional PEM key, or ${GENERATE_HINT}`;
    throw new SbeError('KEY_INVALID', message, { cause: error });
  }
  const algorithm = xmlDsigAlgorithmOf(privateKey, file, 'signing key');
  return { privateKey, publicKey: createPublicKey(privateKey), algorithm, file };
}

/**
 * Parses a PEM public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`) or an X.509 certificate
 * (its public key is used, the certificate itself is not checked). A private key is refused:
 * whoever verifies should never need it. `file` names the source in messages.
 */
export function parsePublicKey(text: string, file: string): { key: KeyObject; algorithm: XmlDsigAlgorithm } {
  const labels = pemLabels(text);
  if (labels.length === 0) {
    throw new SbeError('KEY_INVALID', `public key ${file} is not a PEM file (no "-----BEGIN ...-----" line); give the signing.pub.pem that "keys generate" wrote`);
  }
  if (labels.some((label) => label.endsWith('PRIVATE KEY'))) {
    throw new SbeError('KEY_INVALID', `public key ${file} holds a private key; give the public key (signing.pub.pem) and keep the private key on the exporting host`);
  }
  let key: KeyObject;
  try {
    key = labels[0] === 'CERTIFICATE' ? new X509Certificate(text).publicKey : createPublicKey({ key: text, format: 'pem' });
  } catch (error) {
    throw new SbeError('KEY_INVALID', `public key ${file} is not a readable PEM public key or certificate`, { cause: error });
  }
  return { key, algorithm: xmlDsigAlgorithmOf(key, file, 'public key') };
}

/** Reads and parses a PEM public key file (see `parsePublicKey`). */
export async function loadPublicKey(file: string): Promise<{ key: KeyObject; algorithm: XmlDsigAlgorithm }> {
  return parsePublicKey(await readKeyFile(file, 'public key'), file);
}
