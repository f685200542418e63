import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { generateKeys, type GeneratedKeys } from '../../../daemon/keys';
import { createExportSigner } from '../../../daemon/signing/exportSigner';
import { ascPathOf, loadPgpSigningKey, signDetached, verifyDetached } from '../../../daemon/signing/pgp';
import { signDocument } from '../../../daemon/signing/xmldsig';
import { TRICKY_USERS, expectRejection, makeKeyFiles, runTool, tempDir, unsignedExport, writeTemp } from './helpers';

const PASSPHRASE = 'pgp passphrase 42';

describe('daemon/signing/pgp (OpenPGP detached signatures)', () => {
  let dir: string;
  let gnupgHome: string;
  const keys: Partial<Record<'rsa' | 'ecdsa', GeneratedKeys>> = {};

  /** gpg with a throw-away keyring holding only the public keys imported by the test. */
  function gpg(...args: string[]) {
    return runTool('gpg', ['--batch', '--no-tty', ...args], { ...process.env, GNUPGHOME: gnupgHome });
  }

  before(async () => {
    dir = tempDir();
    gnupgHome = fs.mkdtempSync(path.join(dir, 'gnupg-'));
    fs.chmodSync(gnupgHome, 0o700);
    keys.rsa = await generateKeys({ outDir: path.join(dir, 'rsa'), type: 'rsa', bits: 2048, pgp: { name: 'Library Export', email: 'library@example.edu' } });
    keys.ecdsa = await generateKeys({ outDir: path.join(dir, 'ecdsa'), type: 'ecdsa', pgp: { name: 'Library Export EC', email: 'library-ec@example.edu' } });
    for (const generated of Object.values(keys)) expect((await gpg('--import', generated.pgpPublicKey!)).code).to.equal(0);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const type of ['rsa', 'ecdsa'] as const) {
    it(`${type}: FILE.asc is an armored detached signature that gpg --verify accepts, and rejects once the file changes`, async () => {
      const generated = keys[type]!;
      const file = writeTemp(dir, `export-${type}.xml`, unsignedExport(TRICKY_USERS));
      const asc = await signDetached(file, generated.pgpSecretKey!);
      expect(asc).to.equal(`${file}.asc`);
      expect(fs.readFileSync(asc, 'utf8')).to.match(/^-----BEGIN PGP SIGNATURE-----\n[\s\S]*-----END PGP SIGNATURE-----\n?$/);
      const good = await gpg('--verify', asc, file);
      expect(good.code, good.output).to.equal(0);
      expect(good.output).to.match(new RegExp(`Good signature from "Library Export${type === 'ecdsa' ? ' EC' : ''} <`));
      expect(await verifyDetached(file, asc, generated.pgpPublicKey!)).to.deep.equal({ valid: true, signer: `${generated.pgpFingerprint} Library Export${type === 'ecdsa' ? ' EC' : ''} <library${type === 'ecdsa' ? '-ec' : ''}@example.edu>` });

      fs.appendFileSync(file, ' ');
      expect((await gpg('--verify', asc, file)).code).to.not.equal(0);
      const error = await expectRejection(verifyDetached(file, asc, generated.pgpPublicKey!));
      expect(error.code).to.equal('SIGNATURE_INVALID');
      expect(error.exitCode).to.equal(2);
      expect(error.message).to.match(/does not verify with/);
    });
  }

  it('rejects a signature made by another key, a missing .asc and garbage', async () => {
    const file = writeTemp(dir, 'other.xml', 'content\n');
    const asc = await signDetached(file, keys.rsa!.pgpSecretKey!);
    expect((await expectRejection(verifyDetached(file, asc, keys.ecdsa!.pgpPublicKey!))).message).to.match(/does not verify with/);
    expect((await expectRejection(verifyDetached(file, path.join(dir, 'none.asc'), keys.rsa!.pgpPublicKey!))).message).to.match(/none\.asc does not exist/);
    expect((await expectRejection(verifyDetached(file, writeTemp(dir, 'garbage.asc', 'garbage'), keys.rsa!.pgpPublicKey!))).message).to.match(/not an armored OpenPGP signature/);
  });

  it('signs a signed XML export as it is on disk, for method "both" (XML-DSig inside, .asc beside)', async () => {
    const keyFiles = await makeKeyFiles('rsa', dir);
    const signer = await createExportSigner({ method: 'both', privateKey: keyFiles.privateKey, keyName: 'library-2026', pgpKey: keys.rsa!.pgpSecretKey! });
    const file = writeTemp(dir, 'both.xml', signDocument(unsignedExport([]), keyFiles.signing));
    const companions = await signer!.signCompanions(file);
    expect(companions).to.deep.equal([ascPathOf(file)]);
    expect((await gpg('--verify', companions[0]!, file)).code).to.equal(0);
    const xmlOnly = await createExportSigner({ method: 'xmldsig', privateKey: keyFiles.privateKey, keyName: 'k' });
    expect(await xmlOnly!.signCompanions(file)).to.deep.equal([]);
    const pgpOnly = await createExportSigner({ method: 'pgp', pgpKey: keys.rsa!.pgpSecretKey! });
    pgpOnly!.update('<userBlocksExport>');
    expect(pgpOnly!.signatureBlock()).to.equal('');
  });

  it('streams: signing and verifying a 256 MiB file keeps memory flat', async function () {
    this.timeout(60_000);
    const file = path.join(dir, 'large.bin');
    const handle = fs.openSync(file, 'w');
    const block = randomBytes(1024 * 1024);
    for (let i = 0; i < 256; i++) fs.writeSync(handle, block);
    fs.closeSync(handle);
    const key = await loadPgpSigningKey(keys.ecdsa!.pgpSecretKey!);
    let peak = 0;
    const baseline = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss - baseline);
    }, 10);
    try {
      const asc = await signDetached(file, key);
      await verifyDetached(file, asc, keys.ecdsa!.pgpPublicKey!);
    } finally {
      clearInterval(sampler);
    }
    expect(peak, `RSS grew by ${(peak / 1e6).toFixed(0)} MB`).to.be.lessThan(128 * 1024 * 1024);
    expect((await gpg('--verify', ascPathOf(file), file)).code).to.equal(0);
    fs.rmSync(file);
  });

  describe('key problems are KEY_INVALID (exit 2)', () => {
    let encrypted: string;

    before(async () => {
      const generated = await openpgp.generateKey({ type: 'ecc', curve: 'nistP256', userIDs: [{ name: 'Locked', email: 'locked@example.edu' }], passphrase: PASSPHRASE, format: 'armored' });
      encrypted = writeTemp(dir, 'locked-secret.asc', generated.privateKey);
    });

    async function expectKeyInvalid(promise: Promise<unknown>, reason: RegExp): Promise<void> {
      const error = await expectRejection(promise);
      expect(error.code, error.message).to.equal('KEY_INVALID');
      expect(error.exitCode).to.equal(2);
      expect(error.message).to.match(reason);
      expect(error.message).to.not.contain(PASSPHRASE);
    }

    it('a missing file, a directory, not a key, a public key', async () => {
      await expectKeyInvalid(loadPgpSigningKey(path.join(dir, 'missing.asc')), /missing\.asc does not exist/);
      await expectKeyInvalid(loadPgpSigningKey(dir), /is a directory/);
      await expectKeyInvalid(loadPgpSigningKey(writeTemp(dir, 'not-a-key.asc', 'hello')), /not an armored OpenPGP secret key/);
      await expectKeyInvalid(loadPgpSigningKey(keys.rsa!.pgpPublicKey!), /is a public key; output\.signing\.pgpKey must name the secret key/);
      await expectKeyInvalid(verifyDetached(encrypted, `${encrypted}.asc`, keys.rsa!.pgpSecretKey!), /is a secret key; give the public key/);
    });

    it('a passphrase-protected key: without, with a wrong, with the right passphrase file', async () => {
      await expectKeyInvalid(loadPgpSigningKey(encrypted), /protected by a passphrase; name a file holding it in output\.signing\.passphraseFile/);
      await expectKeyInvalid(loadPgpSigningKey(encrypted, writeTemp(dir, 'wrong', 'wrong\n')), /cannot be unlocked with the passphrase in .*wrong/);
      const file = writeTemp(dir, 'locked.xml', 'data');
      const asc = await signDetached(file, encrypted, writeTemp(dir, 'right', `${PASSPHRASE}\n`));
      const publicKey = (await openpgp.readPrivateKey({ armoredKey: fs.readFileSync(encrypted, 'utf8') })).toPublic();
      expect((await verifyDetached(file, asc, publicKey)).valid).to.equal(true);
    });

    it('through the exporter: createExportSigner with a bad pgpKey', async () => {
      await expectKeyInvalid(createExportSigner({ method: 'pgp', pgpKey: keys.rsa!.pgpPublicKey! }), /is a public key/);
    });
  });
});
