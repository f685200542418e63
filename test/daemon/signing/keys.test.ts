import { expect } from 'chai';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../../daemon/paths';
import { createExportSigner } from '../../../daemon/signing/exportSigner';
import { loadPublicKey, loadSigningKey } from '../../../daemon/signing/keys';
import { expectRejection, makeKeyFiles, tempDir, writeTemp } from './helpers';

const CERTIFICATE = path.join(packageRoot, 'test', 'fixtures', 'signing', 'certificate.pem');
const PASSPHRASE = 'correct horse battery staple';

function pkcs8(key: KeyObject, passphrase?: string): string {
  return key.export(passphrase === undefined ? { type: 'pkcs8', format: 'pem' } : { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
}

/** The base64 lines of a PEM text: key material that no message may contain. */
function materialOf(pem: string): string[] {
  return pem.split('\n').filter((line) => /^[A-Za-z0-9+/=]{40,}$/.test(line));
}

describe('daemon/signing/keys', () => {
  let dir: string;
  let rsaKey: KeyObject;

  before(() => {
    dir = tempDir();
    rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function expectKeyInvalid(file: string, reason: RegExp, options: { passphraseFile?: string; secrets?: string[] } = {}): Promise<void> {
    const error = await expectRejection(loadSigningKey(file, options.passphraseFile === undefined ? {} : { passphraseFile: options.passphraseFile }));
    expect(error.code, error.message).to.equal('KEY_INVALID');
    expect(error.exitCode).to.equal(2);
    expect(error.message).to.contain(file);
    expect(error.message).to.match(reason);
    for (const secret of options.secrets ?? []) expect(error.message).to.not.contain(secret);
    // The exporter's path (createExportSigner) reports the same.
    const viaExporter = await expectRejection(
      createExportSigner({ method: 'xmldsig', privateKey: file, keyName: 'k', ...(options.passphraseFile === undefined ? {} : { passphraseFile: options.passphraseFile }) }),
    );
    expect(viaExporter.code).to.equal('KEY_INVALID');
    expect(viaExporter.message).to.equal(error.message);
  }

  describe('loadSigningKey accepts', () => {
    it('RSA >= 2048 bits (PKCS#8 and traditional PEM) as rsa-sha256, EC P-256 as ecdsa-sha256', async () => {
      expect((await loadSigningKey(writeTemp(dir, 'rsa.pem', pkcs8(rsaKey)))).algorithm).to.equal('rsa-sha256');
      expect((await loadSigningKey(writeTemp(dir, 'rsa-pkcs1.pem', rsaKey.export({ type: 'pkcs1', format: 'pem' })))).algorithm).to.equal('rsa-sha256');
      const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      expect((await loadSigningKey(writeTemp(dir, 'ec.pem', pkcs8(ec)))).algorithm).to.equal('ecdsa-sha256');
      expect((await loadSigningKey(writeTemp(dir, 'ec-sec1.pem', ec.export({ type: 'sec1', format: 'pem' })))).algorithm).to.equal('ecdsa-sha256');
    });

    it('an encrypted key with its passphrase file (trailing newline ignored)', async () => {
      const passphraseFile = writeTemp(dir, 'passphrase', `${PASSPHRASE}\n`);
      const encrypted = writeTemp(dir, 'encrypted.pem', pkcs8(rsaKey, PASSPHRASE));
      expect((await loadSigningKey(encrypted, { passphraseFile })).algorithm).to.equal('rsa-sha256');
      const traditional = writeTemp(dir, 'encrypted-pkcs1.pem', rsaKey.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: PASSPHRASE }));
      expect((await loadSigningKey(traditional, { passphraseFile })).algorithm).to.equal('rsa-sha256');
    });
  });

  describe('loadSigningKey refuses with KEY_INVALID (exit 2)', () => {
    it('a missing file', async () => {
      await expectKeyInvalid(path.join(dir, 'missing.pem'), /does not exist; fix the path or create a key pair with "sis-block-export keys generate/);
    });

    it('a directory (unreadable as a file, even for root)', async () => {
      await expectKeyInvalid(dir, /is a directory, not a key file/);
    });

    it('an unreadable file (when not running as root)', async function () {
      if (process.getuid?.() === 0) this.skip(); // root reads mode-000 files; the directory case covers unreadable for root
      const file = writeTemp(dir, 'unreadable.pem', pkcs8(rsaKey));
      fs.chmodSync(file, 0o000);
      await expectKeyInvalid(file, /cannot be read by this user/);
    });

    it('a file that is not PEM, or a broken PEM', async () => {
      await expectKeyInvalid(writeTemp(dir, 'not-pem.pem', 'just some text\n'), /not a PEM file/);
      await expectKeyInvalid(writeTemp(dir, 'der.pem', rsaKey.export({ type: 'pkcs8', format: 'der' })), /not a PEM file/);
      await expectKeyInvalid(writeTemp(dir, 'broken.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), /not a readable PEM private key/);
    });

    it('an encrypted key without a passphrase file, with a wrong passphrase, with a missing or empty passphrase file', async () => {
      const pem = pkcs8(rsaKey, PASSPHRASE);
      const encrypted = writeTemp(dir, 'encrypted2.pem', pem);
      await expectKeyInvalid(encrypted, /is encrypted; name a file holding its passphrase in output\.signing\.passphraseFile/, { secrets: materialOf(pem) });
      const wrong = writeTemp(dir, 'wrong-passphrase', 'not the passphrase\n');
      await expectKeyInvalid(encrypted, /cannot be decrypted with the passphrase in .*wrong-passphrase/, { passphraseFile: wrong, secrets: ['not the passphrase', ...materialOf(pem)] });
      await expectKeyInvalid(encrypted, /passphrase file .* does not exist/, { passphraseFile: path.join(dir, 'no-such-passphrase') });
      await expectKeyInvalid(encrypted, /passphrase file .* is empty/, { passphraseFile: writeTemp(dir, 'empty-passphrase', '\n') });
    });

    it('RSA shorter than 2048 bits', async () => {
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
      await expectKeyInvalid(writeTemp(dir, 'rsa1024.pem', pkcs8(weak)), /RSA with 1024 bits; at least 2048 are required/);
    });

    it('the wrong key type: ed25519, DSA, RSA-PSS, EC on another curve', async () => {
      await expectKeyInvalid(writeTemp(dir, 'ed25519.pem', pkcs8(generateKeyPairSync('ed25519').privateKey)), /is a key of type ed25519; XML-DSig signing supports RSA/);
      await expectKeyInvalid(writeTemp(dir, 'dsa.pem', pkcs8(generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).privateKey)), /is a key of type dsa/);
      await expectKeyInvalid(writeTemp(dir, 'pss.pem', pkcs8(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey)), /type rsa-pss \(an RSA-PSS-only key cannot/);
      await expectKeyInvalid(writeTemp(dir, 'p384.pem', pkcs8(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey)), /EC on curve secp384r1; XML-DSig signing supports only P-256/);
    });

    it('a public key or a certificate given as the private key', async () => {
      const keys = await makeKeyFiles('rsa', dir);
      await expectKeyInvalid(keys.publicKey, /is a public key, not a private key/);
      await expectKeyInvalid(CERTIFICATE, /is a certificate, not a private key/);
    });
  });

  describe('loadPublicKey', () => {
    it('reads SPKI public keys and certificates', async () => {
      const keys = await makeKeyFiles('ec', dir);
      expect((await loadPublicKey(keys.publicKey)).algorithm).to.equal('ecdsa-sha256');
      expect((await loadPublicKey(CERTIFICATE)).algorithm).to.equal('rsa-sha256');
    });

    it('refuses private keys, weak keys and missing files (KEY_INVALID)', async () => {
      const keys = await makeKeyFiles('rsa', dir);
      for (const [file, reason] of [
        [keys.privateKey, /holds a private key/],
        [writeTemp(dir, 'weak.pub.pem', generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' })), /1024 bits/],
        [path.join(dir, 'none.pub.pem'), /does not exist/],
      ] as const) {
        const error = await expectRejection(loadPublicKey(file));
        expect(error.code).to.equal('KEY_INVALID');
        expect(error.message).to.match(reason);
      }
    });
  });
});
