/**
 * SSH host key checks for the sftp transport: OpenSSH `SHA256:` fingerprints and known_hosts
 * files (plain and hashed host entries, `[host]:port`, wildcards, negation, `@revoked`), so a
 * pinned server is verified the way `ssh` itself would verify it.
 */
import { createHash, createHmac, createPrivateKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { utils as sshUtils } from 'ssh2';

/** An OpenSSH SHA256 fingerprint: 32 bytes as unpadded base64 (a trailing "=" is tolerated). */
export const FINGERPRINT_PATTERN = '^SHA256:[A-Za-z0-9+/]{43}=?$';

/** `SHA256:` + unpadded base64 of the SHA-256 of the raw public key blob, as `ssh-keygen -l` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The canonical form of a fingerprint written by a person: without base64 padding. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.trim().replace(/=+$/, '');
}

/** The key type named at the start of a public key blob (`ssh-ed25519`, `ssh-rsa`, ...). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const length = keyBlob.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > keyBlob.length) return 'unknown';
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

/** How the host is named in known_hosts: `host` on port 22, `[host]:port` elsewhere. */
export function knownHostsName(host: string, port: number): string {
  const lower = host.toLowerCase();
  return port === 22 ? lower : `[${lower}]:${port}`;
}

type HostMatcher = { kind: 'hashed'; salt: Buffer; hash: Buffer } | { kind: 'patterns'; patterns: string[] };

export interface KnownHostsEntry {
  marker?: 'revoked';
  hosts: HostMatcher;
  keyType: string;
  key: Buffer;
  /** 1-based line number in the file. */
  line: number;
}

/**
 * The entries of a known_hosts file that can decide a host key: `@cert-authority` lines are
 * skipped (certificates are not used here), as are comments, blank and malformed lines.
 */
export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: 'revoked' | undefined;
    if (fields[0]!.startsWith('@')) {
      const name = fields.shift()!;
      if (name !== '@revoked') return; // @cert-authority and unknown markers
      marker = 'revoked';
    }
    const [hostField, keyType, keyBase64] = fields;
    if (!hostField || !keyType || !keyBase64) return;
    const key = Buffer.from(keyBase64, 'base64');
    if (key.length === 0) return;
    let hosts: HostMatcher;
    if (hostField.startsWith('|1|')) {
      const [, , salt, hash] = hostField.split('|');
      if (!salt || !hash) return;
      hosts = { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      hosts = { kind: 'patterns', patterns: hostField.split(',').filter((pattern) => pattern !== '') };
    }
    entries.push({ ...(marker ? { marker } : {}), hosts, keyType, key, line: index + 1 });
  });
  return entries;
}

/** OpenSSH's `match_pattern`: `*` is any run of characters, `?` one character. */
function globMatches(pattern: string, text: string): boolean {
  const expression = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${expression}$`, 's').test(text);
}

/** Whether a known_hosts host field names `name` (the `knownHostsName` form): a negated match wins. */
function hostMatches(hosts: HostMatcher, name: string): boolean {
  if (hosts.kind === 'hashed') {
    const expected = createHmac('sha1', hosts.salt).update(name).digest();
    return expected.length === hosts.hash.length && timingSafeEqual(expected, hosts.hash);
  }
  let matched = false;
  for (const pattern of hosts.patterns) {
    const negated = pattern.startsWith('!');
    if (globMatches((negated ? pattern.slice(1) : pattern).toLowerCase(), name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export type KnownHostsVerdict = { result: 'match'; line: number } | { result: 'revoked'; line: number } | { result: 'none' };

/**
 * Checks `keyBlob` offered by `host:port` against known_hosts entries. A key on an `@revoked`
 * line for this host (usually `@revoked * ...`) is refused whatever else matches.
 */
export function checkKnownHosts(entries: readonly KnownHostsEntry[], host: string, port: number, keyBlob: Buffer): KnownHostsVerdict {
  const name = knownHostsName(host, port);
  const revoked = entries.find((entry) => entry.marker === 'revoked' && entry.key.equals(keyBlob) && hostMatches(entry.hosts, name));
  if (revoked) return { result: 'revoked', line: revoked.line };
  const match = entries.find((entry) => entry.marker === undefined && entry.key.equals(keyBlob) && hostMatches(entry.hosts, name));
  return match ? { result: 'match', line: match.line } : { result: 'none' };
}

/** The key types known_hosts holds for `host:port`, in file order (to ask the server for those first, as `ssh` does). */
export function knownKeyTypes(entries: readonly KnownHostsEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types = entries.filter((entry) => entry.marker === undefined && hostMatches(entry.hosts, name)).map((entry) => entry.keyType);
  return [...new Set(types)];
}

/** The host key signature algorithms (ssh2's names) that produce keys of `keyType`. */
export function hostKeyAlgorithmsFor(keyType: string): string[] {
  return keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [keyType];
}

/** An SSH wire-format string: uint32 length, then the bytes. */
function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** An unencrypted `openssh-key-v1` private key for an Ed25519 key pair (32-byte seed and public key). */
function opensshEd25519(seed: Buffer, publicKey: Buffer): string {
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString('ssh-ed25519'), sshString(publicKey), sshString(Buffer.concat([seed, publicKey])), sshString('')]);
  const padding = Buffer.from(Array.from({ length: (8 - (secret.length % 8)) % 8 }, (_unused, index) => index + 1));
  secret = Buffer.concat([secret, padding]);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(1);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), sshString('none'), sshString('none'), sshString(''), count, sshString(publicBlob), sshString(secret)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return ['-----BEGIN OPENSSH PRIVATE KEY-----', ...lines, '-----END OPENSSH PRIVATE KEY-----', ''].join('\n');
}

/**
 * A private key in a form ssh2 reads. ssh2 takes OpenSSH keys and PKCS#1/SEC1 PEM, but not
 * PKCS#8 PEM (`BEGIN PRIVATE KEY`, `BEGIN ENCRYPTED PRIVATE KEY`, what `openssl genpkey` and
 * Node write); those are decrypted here and handed over in memory, unencrypted, as PKCS#1
 * (RSA), SEC1 (EC) or OpenSSH (Ed25519). Returns an Error saying why when the key is unusable.
 */
export function usablePrivateKey(data: Buffer, passphrase: string | undefined): { key: Buffer | string; passphrase?: string } | Error {
  const parsed = sshUtils.parseKey(data, passphrase);
  if (!(parsed instanceof Error)) return { key: data, ...(passphrase === undefined ? {} : { passphrase }) };
  const pem = data.toString('latin1');
  if (!/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(pem)) return parsed;
  const encrypted = pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
  if (encrypted && passphrase === undefined) return new Error('the PKCS#8 key is encrypted and no passphrase is given (passphraseFile or passphraseEnv)');
  let keyObject;
  try {
    keyObject = createPrivateKey({ key: data, format: 'pem', ...(encrypted ? { passphrase } : {}) });
  } catch (error) {
    return new Error(encrypted ? `cannot decrypt the PKCS#8 key: wrong passphrase? (${(error as Error).message})` : (error as Error).message);
  }
  switch (keyObject.asymmetricKeyType) {
    case 'rsa':
      return { key: keyObject.export({ type: 'pkcs1', format: 'pem' }) as string };
    case 'ec':
      return { key: keyObject.export({ type: 'sec1', format: 'pem' }) as string };
    case 'ed25519': {
      const jwk = keyObject.export({ format: 'jwk' });
      return { key: opensshEd25519(Buffer.from(jwk.d!, 'base64url'), Buffer.from(jwk.x!, 'base64url')) };
    }
    default:
      return new Error(`${keyObject.asymmetricKeyType ?? 'this'} keys are not supported for SSH; use ed25519, ecdsa or rsa`);
  }
}
