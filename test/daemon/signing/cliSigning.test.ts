import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { loadSigningKey } from '../../../daemon/signing/keys';
import { loadPgpSigningKey, signDetached } from '../../../daemon/signing/pgp';
import { signDocument } from '../../../daemon/signing/xmldsig';
import { KEY_NAME, USERS, runSigningCli, tempDir, unsignedExport, writeTemp, xmlsecVerify } from './helpers';

function modeOf(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

describe('daemon/cliSigning (verify, keys generate)', () => {
  let dir: string;

  before(() => {
    dir = tempDir();
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('keys generate', () => {
    it('creates a usable RSA key pair with private files 0600, public 0644, the directory 0700', async function () {
      this.timeout(30_000);
      const out = path.join(dir, 'keys', 'rsa');
      const result = await runSigningCli(['keys', 'generate', '--out', out]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain(`wrote ${path.join(out, 'signing.pem')} (RSA 3072 bits private key, mode 0600)`);
      expect(result.stdout).to.contain(`wrote ${path.join(out, 'signing.pub.pem')} (public key, mode 0644)`);
      expect(modeOf(out)).to.equal(0o700);
      expect(modeOf(path.join(out, 'signing.pem'))).to.equal(0o600);
      expect(modeOf(path.join(out, 'signing.pub.pem'))).to.equal(0o644);
      expect(fs.readdirSync(out).sort()).to.deep.equal(['signing.pem', 'signing.pub.pem']);

      const key = await loadSigningKey(path.join(out, 'signing.pem'));
      expect(key.algorithm).to.equal('rsa-sha256');
      expect(key.privateKey.asymmetricKeyDetails?.modulusLength).to.equal(3072);
      const file = writeTemp(dir, 'generated-rsa.xml', signDocument(unsignedExport(USERS), { key, keyName: KEY_NAME }));
      expect((await xmlsecVerify(file, path.join(out, 'signing.pub.pem'))).code).to.equal(0);
    });

    it('creates ECDSA P-256 and OpenPGP keys with --type ecdsa --pgp', async () => {
      const out = path.join(dir, 'keys', 'ec');
      const result = await runSigningCli(['keys', 'generate', '--out', out, '--type', 'ecdsa', '--pgp', '--name', 'Library', '--email', 'library@example.edu']);
      expect(result.code, result.stderr).to.equal(0);
      expect(fs.readdirSync(out).sort()).to.deep.equal(['pgp-public.asc', 'pgp-secret.asc', 'signing.pem', 'signing.pub.pem']);
      expect(modeOf(path.join(out, 'pgp-secret.asc'))).to.equal(0o600);
      expect(modeOf(path.join(out, 'pgp-public.asc'))).to.equal(0o644);
      expect(result.stdout).to.match(/OpenPGP secret key [0-9A-F]{40}, mode 0600/);
      expect(result.stderr).to.contain('no passphrase');
      expect((await loadSigningKey(path.join(out, 'signing.pem'))).algorithm).to.equal('ecdsa-sha256');
      const pgpKey = await loadPgpSigningKey(path.join(out, 'pgp-secret.asc'));
      expect(pgpKey.getUserIDs()).to.deep.equal(['Library <library@example.edu>']);
    });

    it('refuses to overwrite existing key files (exit 2) and leaves them as they were', async () => {
      const out = path.join(dir, 'keys', 'existing');
      fs.mkdirSync(out, { recursive: true });
      fs.writeFileSync(path.join(out, 'signing.pub.pem'), 'the key the SIS trusts');
      const result = await runSigningCli(['keys', 'generate', '--out', out, '--type', 'ecdsa']);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/refusing to overwrite .*signing\.pub\.pem; move the old key files away first/);
      expect(fs.readdirSync(out)).to.deep.equal(['signing.pub.pem']);
      expect(fs.readFileSync(path.join(out, 'signing.pub.pem'), 'utf8')).to.equal('the key the SIS trusts');
      const again = await runSigningCli(['keys', 'generate', '--out', writeTemp(dir, 'a-file', 'x'), '--type', 'ecdsa']);
      expect(again.code).to.equal(2);
      expect(again.stderr).to.match(/exists and is not a directory/);
    });

    it('refuses bad usage with exit 2', async () => {
      const out = path.join(dir, 'keys', 'never');
      for (const [args, message] of [
        [['--type', 'ecdsa', '--bits', '384'], /ECDSA keys are P-256/],
        [['--bits', '1024'], /RSA keys need --bits between 2048 and 8192/],
        [['--bits', 'many'], /--bits must be a whole number/],
        [['--type', 'dsa'], /Allowed choices are rsa, ecdsa/],
        [['--pgp', '--name', 'X'], /--pgp needs --name NAME and --email EMAIL/],
        [['--name', 'X', '--email', 'x@example.edu'], /add --pgp/],
        [['--pgp', '--name', 'X', '--email', 'not-an-address'], /--email must be an e-mail address/],
      ] as const) {
        const result = await runSigningCli(['keys', 'generate', '--out', out, ...args]);
        expect(result.code, args.join(' ')).to.equal(2);
        expect(result.stderr, args.join(' ')).to.match(message);
      }
      expect(fs.existsSync(out)).to.equal(false);
    });
  });

  describe('verify', () => {
    let keysDir: string;
    let signed: string;

    before(async () => {
      keysDir = path.join(dir, 'verify-keys');
      expect((await runSigningCli(['keys', 'generate', '--out', keysDir, '--type', 'ecdsa', '--pgp', '--name', 'Library', '--email', 'library@example.edu'])).code).to.equal(0);
      const key = await loadSigningKey(path.join(keysDir, 'signing.pem'));
      signed = writeTemp(dir, 'signed.xml', signDocument(unsignedExport(USERS), { key, keyName: KEY_NAME }));
      await signDetached(signed, path.join(keysDir, 'pgp-secret.asc'));
    });

    it('prints "FILE: valid signature (KeyName ...)" and exits 0', async () => {
      const result = await runSigningCli(['verify', signed, '--pubkey', path.join(keysDir, 'signing.pub.pem')]);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal(`${signed}: valid signature (KeyName ${KEY_NAME})\n`);
    });

    it('checks the OpenPGP .asc too with --pgp-pubkey (FILE.asc by default, or --asc FILE)', async () => {
      const both = await runSigningCli(['verify', signed, '--pubkey', path.join(keysDir, 'signing.pub.pem'), '--asc', '--pgp-pubkey', path.join(keysDir, 'pgp-public.asc')]);
      expect(both.code, both.stderr).to.equal(0);
      expect(both.stdout).to.match(new RegExp(`^${signed}: valid signature \\(KeyName ${KEY_NAME}\\)\n${signed}: valid OpenPGP signature ${signed}\\.asc \\(key [0-9A-F]{40} Library <library@example\\.edu>\\)\n$`));
      const moved = path.join(dir, 'elsewhere.asc');
      fs.copyFileSync(`${signed}.asc`, moved);
      const pgpOnly = await runSigningCli(['verify', signed, '--asc', moved, '--pgp-pubkey', path.join(keysDir, 'pgp-public.asc')]);
      expect(pgpOnly.code, pgpOnly.stderr).to.equal(0);
      expect(pgpOnly.stdout).to.contain(`valid OpenPGP signature ${moved}`);
    });

    it('exits 2 with the reason when the file was changed', async () => {
      const tampered = writeTemp(dir, 'tampered.xml', fs.readFileSync(signed, 'utf8').replace('jdoe', 'jdoF'));
      const result = await runSigningCli(['verify', tampered, '--pubkey', path.join(keysDir, 'signing.pub.pem')]);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.contain(`${tampered}: the document digest does not match`);
      fs.copyFileSync(`${signed}.asc`, `${tampered}.asc`);
      const pgp = await runSigningCli(['verify', tampered, '--pgp-pubkey', path.join(keysDir, 'pgp-public.asc')]);
      expect(pgp.code).to.equal(2);
      expect(pgp.stderr).to.match(/OpenPGP signature .* does not verify/);
    });

    it('exits 2 on bad usage and unusable keys', async () => {
      for (const [args, message] of [
        [['verify', signed], /needs --pubkey PEM/],
        [['verify', signed, '--asc', '--pubkey', path.join(keysDir, 'signing.pub.pem')], /--asc needs --pgp-pubkey/],
        [['verify', signed, '--pubkey', path.join(keysDir, 'signing.pem')], /holds a private key/],
        [['verify', signed, '--pubkey', path.join(dir, 'no.pem')], /public key .*no\.pem does not exist/],
        [['verify', '--pubkey', path.join(keysDir, 'signing.pub.pem')], /missing required argument/],
      ] as const) {
        const result = await runSigningCli(args);
        expect(result.code, args.join(' ')).to.equal(2);
        expect(result.stderr, args.join(' ')).to.match(message);
      }
    });
  });
});
