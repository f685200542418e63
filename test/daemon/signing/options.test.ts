import { expect } from 'chai';
import path from 'node:path';
import { SbeError } from '../../../daemon/errors';
import { parseProfile } from '../../../daemon/profiles';
import { builtinRegistry } from '../../../daemon/registry';
import { signingSchema } from '../../../daemon/signing/options';

const FILE = '/etc/sis-block-export/profiles.d/main.yaml';
const HEAD = ['id: main', 'currency: USD', 'delivery:', '  transport: local', '  directory: /srv/inbox', 'output:'];

function profile(...signing: string[]) {
  return parseProfile(FILE, `${[...HEAD, ...signing].join('\n')}\n`, builtinRegistry);
}

function issues(...signing: string[]): string[] {
  try {
    profile(...signing);
  } catch (error) {
    expect(error).to.be.instanceOf(SbeError);
    const sbe = error as SbeError;
    expect(sbe.code).to.equal('PROFILE_INVALID');
    expect(sbe.exitCode).to.equal(2);
    for (const issue of sbe.issues) expect(issue.line, 'every issue has a line').to.be.a('number');
    return sbe.issues.map((issue) => `${issue.path} ${issue.message}`);
  }
  expect.fail('the profile must be refused');
}

describe('output.signing in profiles', () => {
  it('accepts the SPEC example; method defaults to xmldsig; paths are resolved against the profile file', () => {
    const { output } = profile('  signing: { privateKey: keys/signing.pem, keyName: library-2026, passphraseFile: /run/secrets/pass }');
    expect(output.signing).to.deep.equal({
      method: 'xmldsig',
      privateKey: path.join(path.dirname(FILE), 'keys', 'signing.pem'),
      keyName: 'library-2026',
      passphraseFile: '/run/secrets/pass',
    });
  });

  it('accepts pgp and both', () => {
    expect(profile('  signing: { method: pgp, pgpKey: ../keys/pgp-secret.asc }').output.signing).to.deep.equal({ method: 'pgp', pgpKey: '/etc/sis-block-export/keys/pgp-secret.asc' });
    expect(profile('  signing: { method: both, privateKey: s.pem, keyName: "Library Key 2026", pgpKey: p.asc }').output.signing?.method).to.equal('both');
  });

  it('keeps profiles without signing unsigned', () => {
    expect(profile('  fileName: x.xml').output.signing).to.equal(undefined);
  });

  it('requires the keys each method needs', () => {
    expect(issues('  signing: { method: xmldsig, privateKey: s.pem }')).to.deep.equal(['/output/signing missing required key "keyName"']);
    expect(issues('  signing: { keyName: k }')).to.deep.equal(['/output/signing missing required key "privateKey"']);
    expect(issues('  signing: { method: pgp }')).to.deep.equal(['/output/signing missing required key "pgpKey"']);
    expect(issues('  signing: { method: both, pgpKey: p.asc }')).to.have.members(['/output/signing missing required key "privateKey"', '/output/signing missing required key "keyName"']);
    expect(issues('  signing: { method: both, privateKey: s.pem, keyName: k }')).to.deep.equal(['/output/signing missing required key "pgpKey"']);
  });

  it('refuses unknown keys, unknown methods, inline secrets and odd key names', () => {
    expect(issues('  signing: { privateKey: s.pem, keyName: k, passphrase: hunter2 }')[0]).to.match(/unknown key "passphrase"; allowed keys here: method, privateKey, keyName, pgpKey, passphraseFile/);
    expect(issues('  signing: { method: hmac, privateKey: s.pem, keyName: k }')[0]).to.match(/"method" must be one of: "xmldsig", "pgp", "both"/);
    for (const keyName of ['" spaces around "', 'a<b', '""', 'x'.repeat(129)]) {
      expect(issues(`  signing: { privateKey: s.pem, keyName: ${keyName} }`)[0]).to.match(/"keyName" must be 1-128 letters, digits/);
    }
  });

  it('documents every field', () => {
    expect(signingSchema.description).to.be.a('string').and.not.empty;
    for (const [name, property] of Object.entries(signingSchema.properties as Record<string, { description?: string }>)) {
      expect(property.description, name).to.be.a('string').and.not.empty;
    }
  });
});
