import { expect } from 'chai';
import {
  checkKnownHosts,
  FINGERPRINT_PATTERN,
  fingerprintOf,
  hostKeyAlgorithmsFor,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  normalizeFingerprint,
  parseKnownHosts,
} from '../../transports/sshKeys';

// Fixtures made with ssh-keygen 9.2: `ssh-keygen -t ed25519` / `-t ecdsa`, `ssh-keygen -lf KEY.pub`,
// and `ssh-keygen -H` of "[sis.example.edu]:2222 KEY" and "sis.example.edu KEY".
const ED25519 = 'AAAAC3NzaC1lZDI1NTE5AAAAIKxuUd5LW5R4s1sjwCw4qkghox3NzvGC//SH0WV+IFcl';
const ED25519_FINGERPRINT = 'SHA256:XeGAYRDfzkXcGh4MQOnL5PYagX/8Ff5nF4TTpKG8G10';
const ECDSA = 'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBSSqu+QoSLWMDNf1dLAlEx2nNuMcd4w0w169fcJPgRb6QEfyv5L54eG+FPxCyBpJnFcYJBRlbk5INCUTMS04ZQ=';
const ECDSA_FINGERPRINT = 'SHA256:o5LCVeS9ty50ibQhghdtucIdg3HrmoxiNUZ1rMiuLck';
const HASHED_2222 = '|1|jLpnhXs+dJCHihHsALZXk9NgTPg=|8YC3F+jDxLT4Mkt5N/oBD1h6HKw=';
const HASHED_22 = '|1|9e3yiXh3Kip02OmU36ww1svgBi4=|eUAlp2CGtjQqdk3xs0Yav53hvLE=';

const ed25519 = Buffer.from(ED25519, 'base64');
const ecdsa = Buffer.from(ECDSA, 'base64');

function verdict(lines: string[], host: string, port: number, key: Buffer = ed25519): string {
  return checkKnownHosts(parseKnownHosts(lines.join('\n')), host, port, key).result;
}

describe('transports/sshKeys', () => {
  it('computes fingerprints exactly as ssh-keygen -l prints them', () => {
    expect(fingerprintOf(ed25519)).to.equal(ED25519_FINGERPRINT);
    expect(fingerprintOf(ecdsa)).to.equal(ECDSA_FINGERPRINT);
    expect(new RegExp(FINGERPRINT_PATTERN).test(ED25519_FINGERPRINT)).to.equal(true);
    expect(new RegExp(FINGERPRINT_PATTERN).test(`${ED25519_FINGERPRINT}=`)).to.equal(true);
    expect(normalizeFingerprint(`${ED25519_FINGERPRINT}=`)).to.equal(ED25519_FINGERPRINT);
    expect(new RegExp(FINGERPRINT_PATTERN).test('MD5:12:f8:7e')).to.equal(false);
  });

  it('reads the key type from the key blob', () => {
    expect(keyTypeOf(ed25519)).to.equal('ssh-ed25519');
    expect(keyTypeOf(ecdsa)).to.equal('ecdsa-sha2-nistp256');
    expect(keyTypeOf(Buffer.from([0, 0]))).to.equal('unknown');
  });

  it('names hosts as known_hosts does: [host]:port except on port 22', () => {
    expect(knownHostsName('SIS.example.edu', 22)).to.equal('sis.example.edu');
    expect(knownHostsName('127.0.0.1', 2222)).to.equal('[127.0.0.1]:2222');
  });

  it('matches plain entries, host lists, wildcards and [host]:port', () => {
    expect(verdict([`sis.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
    expect(verdict([`sis.example.edu ssh-ed25519 ${ED25519}`], 'SIS.Example.EDU', 22)).to.equal('match');
    expect(verdict([`sis.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 2222)).to.equal('none');
    expect(verdict([`[sis.example.edu]:2222 ssh-ed25519 ${ED25519}`], 'sis.example.edu', 2222)).to.equal('match');
    expect(verdict([`other.example.edu,[sis.example.edu]:2222,10.0.0.1 ssh-ed25519 ${ED25519}`], 'sis.example.edu', 2222)).to.equal('match');
    expect(verdict([`*.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
    expect(verdict([`si?.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
    expect(verdict([`si?.example.edu ssh-ed25519 ${ED25519}`], 'siss.example.edu', 22)).to.equal('none');
    expect(verdict([`[sis.example.edu]:* ssh-ed25519 ${ED25519}`], 'sis.example.edu', 2222)).to.equal('match');
    // A regex metacharacter in a pattern is literal.
    expect(verdict([`sis.example.edu ssh-ed25519 ${ED25519}`], 'sisXexample.edu', 22)).to.equal('none');
  });

  it('lets a negated pattern win over a positive one', () => {
    expect(verdict([`*.example.edu,!sis.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('none');
    expect(verdict([`*.example.edu,!sis.example.edu ssh-ed25519 ${ED25519}`], 'www.example.edu', 22)).to.equal('match');
    expect(verdict([`!sis.example.edu ssh-ed25519 ${ED25519}`], 'www.example.edu', 22)).to.equal('none');
  });

  it('matches hashed entries made by ssh-keygen -H, with and without a port', () => {
    expect(verdict([`${HASHED_2222} ssh-ed25519 ${ED25519}`], 'sis.example.edu', 2222)).to.equal('match');
    expect(verdict([`${HASHED_2222} ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('none');
    expect(verdict([`${HASHED_22} ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
    expect(verdict([`${HASHED_22} ssh-ed25519 ${ED25519}`], 'other.example.edu', 22)).to.equal('none');
  });

  it('wants the same key, not only the same host', () => {
    expect(verdict([`sis.example.edu ecdsa-sha2-nistp256 ${ECDSA}`], 'sis.example.edu', 22)).to.equal('none');
    expect(verdict([`sis.example.edu ecdsa-sha2-nistp256 ${ECDSA}`, `sis.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
  });

  it('skips comments, blank and malformed lines and @cert-authority, and honours @revoked', () => {
    const lines = [
      '# comment',
      '',
      'garbage',
      `@cert-authority *.example.edu ssh-ed25519 ${ED25519}`,
      `sis.example.edu ssh-ed25519 ${ED25519} trailing comment`,
    ];
    expect(parseKnownHosts(lines.join('\n'))).to.have.length(1);
    expect(verdict([`@cert-authority *.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('none');
    const revoked = checkKnownHosts(parseKnownHosts([`sis.example.edu ssh-ed25519 ${ED25519}`, `@revoked * ssh-ed25519 ${ED25519}`].join('\n')), 'sis.example.edu', 22, ed25519);
    expect(revoked).to.deep.equal({ result: 'revoked', line: 2 });
    expect(verdict([`sis.example.edu ssh-ed25519 ${ED25519}`, `@revoked other.example.edu ssh-ed25519 ${ED25519}`], 'sis.example.edu', 22)).to.equal('match');
  });

  it('lists the key types known for a host and the algorithms that offer them', () => {
    const entries = parseKnownHosts([`sis.example.edu ecdsa-sha2-nistp256 ${ECDSA}`, `* ssh-rsa AAAAB3NzaC1yc2E=`, `other ssh-ed25519 ${ED25519}`].join('\n'));
    expect(knownKeyTypes(entries, 'sis.example.edu', 22)).to.deep.equal(['ecdsa-sha2-nistp256', 'ssh-rsa']);
    expect(hostKeyAlgorithmsFor('ssh-rsa')).to.deep.equal(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(hostKeyAlgorithmsFor('ssh-ed25519')).to.deep.equal(['ssh-ed25519']);
  });
});
