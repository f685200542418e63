import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { SbeError } from '../../../daemon/errors';
import { verifyExport } from '../../../daemon/signing/verify';
import { ALGORITHM_URIS, signDocument } from '../../../daemon/signing/xmldsig';
import { KEY_NAME, USERS, expectRejection, makeKeyFiles, tempDir, unsignedExport, writeTemp, xmlsecVerify, type KeyFiles } from './helpers';

const SIGNATURE_LINE = /  <Signature xmlns="[^"]*">.*<\/Signature>\n/;

function signatureOf(xml: string): string {
  return SIGNATURE_LINE.exec(xml)![0];
}

function swapFirstTwoUsers(xml: string): string {
  const users = [...xml.matchAll(/ {2}<user>\n[\s\S]*?<\/user>\n/g)].map((match) => match[0]);
  return xml.replace(users[0]! + users[1]!, users[1]! + users[0]!);
}

describe('daemon/signing/verify', () => {
  let dir: string;
  let rsa: KeyFiles;
  let ec: KeyFiles;
  let otherRsa: KeyFiles;
  let unsigned: string;
  let signed: string;

  before(async () => {
    dir = tempDir();
    rsa = await makeKeyFiles('rsa', dir);
    ec = await makeKeyFiles('ec', dir);
    otherRsa = await makeKeyFiles('rsa', fs.mkdtempSync(path.join(dir, 'other-')));
    unsigned = unsignedExport(USERS);
    signed = signDocument(unsigned, rsa.signing);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let counter = 0;
  function file(xml: string | Buffer): string {
    return writeTemp(dir, `case-${++counter}.xml`, xml);
  }

  async function expectInvalid(xml: string | Buffer, reason: RegExp, options: { xmlsecRejects?: boolean; key?: KeyFiles } = {}): Promise<SbeError> {
    const target = file(xml);
    const key = options.key ?? rsa;
    const error = await expectRejection(verifyExport(target, key.publicKeyObject));
    expect(error.code, error.message).to.equal('SIGNATURE_INVALID');
    expect(error.exitCode).to.equal(2);
    expect(error.message).to.contain(target);
    expect(error.message).to.match(reason);
    if (options.xmlsecRejects) {
      const xmlsec = await xmlsecVerify(target, key.publicKey);
      expect(xmlsec.code, `xmlsec1 must reject too:\n${xmlsec.output}`).to.not.equal(0);
    }
    return error;
  }

  async function expectValid(xml: string, key: KeyFiles = rsa): Promise<void> {
    const target = file(xml);
    expect(await verifyExport(target, key.publicKeyObject)).to.deep.equal({ valid: true, keyName: KEY_NAME });
    const xmlsec = await xmlsecVerify(target, key.publicKey);
    expect(xmlsec.code, `xmlsec1 must accept too:\n${xmlsec.output}`).to.equal(0);
  }

  describe('accepts', () => {
    it('the signed export, with the key as KeyObject or PEM text, RSA and ECDSA', async () => {
      await expectValid(signed);
      expect(await verifyExport(file(signed), fs.readFileSync(rsa.publicKey, 'utf8'))).to.deep.equal({ valid: true, keyName: KEY_NAME });
      await expectValid(signDocument(unsigned, ec.signing), ec);
    });

    it('rewrites that keep the canonical form: comments, attribute order, quotes, self-closing tags, CRLF (as xmlsec1 does)', async () => {
      const rewritten = signed
        .replace('<user>', '<user><!-- a comment is not signed content -->')
        .replace(/<summary activeBalanceTotal="([^"]*)" blocks="([^"]*)" skippedMissingMatchId="([^"]*)" users="([^"]*)"><\/summary>/, "<summary users='$4' blocks='$2' skippedMissingMatchId='$3' activeBalanceTotal='$1'/>")
        .replaceAll('<blocks></blocks>', '<blocks/>')
        .replaceAll('\n', '\r\n');
      await expectValid(rewritten);
    });

    it('a KeyInfo that also carries KeyValue or X509Data: never used, ignored', async () => {
      await expectValid(signed.replace('</KeyName></KeyInfo>', '</KeyName><KeyValue><RSAKeyValue><Modulus>AAAA</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue><X509Data><X509Certificate>AAAA</X509Certificate></X509Data></KeyInfo>'));
    });
  });

  describe('rejects', () => {
    it('one byte of text changed', async () => {
      await expectInvalid(signed.replace('<primaryId>jdoe<', '<primaryId>jdoF<'), /digest does not match/, { xmlsecRejects: true });
    });

    it('an attribute changed', async () => {
      await expectInvalid(signed.replace('currency="USD"', 'currency="EUR"'), /digest does not match/, { xmlsecRejects: true });
    });

    it('users reordered', async () => {
      const reordered = swapFirstTwoUsers(signed);
      expect(reordered).to.not.equal(signed);
      await expectInvalid(reordered, /digest does not match/, { xmlsecRejects: true });
    });

    it('whitespace between elements changed', async () => {
      await expectInvalid(signed.replace('  <summary', '   <summary'), /digest does not match/, { xmlsecRejects: true });
    });

    it('a wrong public key of the same type', async () => {
      await expectInvalid(signed, /does not verify with the given public key/, { xmlsecRejects: true, key: otherRsa });
    });

    it('a public key of the other type', async () => {
      await expectInvalid(signed, /RSA-SHA256 but the given public key is an EC P-256 key/, { key: ec });
    });

    it('a changed SignatureValue', async () => {
      const value = /<SignatureValue>([^<]*)</.exec(signed)![1]!;
      const flipped = Buffer.from(value, 'base64');
      flipped[10]! ^= 1;
      await expectInvalid(signed.replace(value, flipped.toString('base64')), /signature value does not verify/, { xmlsecRejects: true });
    });

    it('content changed together with its DigestValue (SignedInfo is signed)', async () => {
      const tampered = unsigned.replace('<primaryId>jdoe<', '<primaryId>mallory<');
      const forgedDigest = /<DigestValue>([^<]*)</.exec(signDocument(tampered, otherRsa.signing))![1]!;
      const forged = signDocument(tampered, rsa.signing).replace(signatureOf(signDocument(tampered, rsa.signing)), signatureOf(signed).replace(/<DigestValue>[^<]*</, `<DigestValue>${forgedDigest}<`));
      await expectInvalid(forged, /signature value does not verify/, { xmlsecRejects: true });
    });

    it('content re-signed by another key that the file itself carries (KeyValue / X509Data are never trusted)', async () => {
      const tampered = unsigned.replace('<primaryId>jdoe<', '<primaryId>mallory<');
      const resigned = signDocument(tampered, otherRsa.signing);
      const withKey = resigned.replace('</KeyName></KeyInfo>', `</KeyName><X509Data><X509Certificate>${fs.readFileSync(otherRsa.publicKey, 'utf8').replace(/-----[^-]+-----|\n/g, '')}</X509Certificate></X509Data></KeyInfo>`);
      await expectInvalid(withKey, /does not verify with the given public key/, { xmlsecRejects: true });
    });

    it('a missing Signature', async () => {
      await expectInvalid(unsigned, /no Signature element: it is not signed/);
    });

    it('a second Signature', async () => {
      const signature = signatureOf(signed);
      await expectInvalid(signed.replace(signature, signature + signature), /more than one Signature/);
    });

    it('a Signature that is not the last element of the root', async () => {
      const signature = signatureOf(signed);
      const summary = /  <summary [^\n]*\n/.exec(signed)![0];
      await expectInvalid(signed.replace(summary + signature, signature + summary), /not the last element of the root: <summary>/);
    });

    it('a Signature deeper in the document (signature wrapping)', async () => {
      const signature = signatureOf(signed);
      await expectInvalid(signed.replace(signature, '').replace('<blocks></blocks>', `<blocks>${signature.trim()}</blocks>`), /not a child of the root/);
    });

    it('a Reference to another URI (#id)', async () => {
      await expectInvalid(signed.replace('<Reference URI="">', '<Reference URI="#user-1">'), /URI="#user-1"; only URI=""/);
      await expectInvalid(signed.replace('<Reference URI="">', '<Reference>'), /no URI/);
    });

    it('an extra Reference (signature wrapping)', async () => {
      const reference = /<Reference URI="">.*<\/Reference>/.exec(signed)![0];
      await expectInvalid(signed.replace(reference, reference + reference.replace('URI=""', 'URI="#x"')), /unexpected Reference element/);
    });

    it('transforms other than enveloped-signature then exc-c14n', async () => {
      const [enveloped, exclusive] = [`<Transform Algorithm="${ALGORITHM_URIS.envelopedSignature}"></Transform>`, `<Transform Algorithm="${ALGORITHM_URIS.excC14n}"></Transform>`];
      await expectInvalid(signed.replace(enveloped + exclusive, exclusive + enveloped), /Transform\[1\] Algorithm/);
      await expectInvalid(signed.replace(exclusive, ''), /exactly the transforms enveloped-signature then exc-c14n \(found 1/);
      await expectInvalid(signed.replace(exclusive, exclusive + exclusive), /found 3/);
      await expectInvalid(signed.replace(exclusive, exclusive.replace('></', '><InclusiveNamespaces xmlns="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="x"></InclusiveNamespaces></')), /must be empty/);
    });

    it('other canonicalization, digest and signature algorithms', async () => {
      await expectInvalid(signed.replace(`<CanonicalizationMethod Algorithm="${ALGORITHM_URIS.excC14n}">`, '<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315">'), /CanonicalizationMethod Algorithm .* is not accepted/);
      await expectInvalid(signed.replace(ALGORITHM_URIS.sha256, 'http://www.w3.org/2000/09/xmldsig#sha1'), /DigestMethod Algorithm .* is not accepted/);
      await expectInvalid(signed.replace(ALGORITHM_URIS['rsa-sha256'], 'http://www.w3.org/2000/09/xmldsig#rsa-sha1'), /SignatureMethod Algorithm .* is not accepted/);
      await expectInvalid(signed.replace(ALGORITHM_URIS['rsa-sha256'], 'http://www.w3.org/2000/09/xmldsig#hmac-sha1'), /SignatureMethod Algorithm .* is not accepted/);
    });

    it('extra parts in the Signature (Object, a second SignedInfo, text, foreign attributes)', async () => {
      await expectInvalid(signed.replace('</KeyInfo></Signature>', '</KeyInfo><Object><x>y</x></Object></Signature>'), /unexpected Object element/);
      const signedInfo = /<SignedInfo>.*<\/SignedInfo>/.exec(signed)![0];
      await expectInvalid(signed.replace(signedInfo, signedInfo + signedInfo), /exactly one SignedInfo/);
      await expectInvalid(signed.replace('<SignedInfo>', 'text<SignedInfo>'), /Signature has unexpected text/);
      await expectInvalid(signed.replace('<Reference URI="">', '<Reference URI="" Foo="1">'), /unexpected attribute Foo/);
    });

    it('a DOCTYPE, with or without entities', async () => {
      await expectInvalid(signed.replace('?>\n', '?>\n<!DOCTYPE userBlocksExport>\n'), /DOCTYPE/);
      await expectInvalid(signed.replace('?>\n', '?>\n<!DOCTYPE userBlocksExport [<!ENTITY e "jdoe">]>\n').replace('>jdoe<', '>&e;<'), /DOCTYPE/);
    });

    it('files that are not a well-formed UTF-8 export', async () => {
      await expectInvalid(signed.slice(0, signed.length - 30), /not well-formed/);
      await expectInvalid(Buffer.concat([Buffer.from(signed.slice(0, 200)), Buffer.from([0xc3, 0x28]), Buffer.from(signed.slice(200))]), /not valid UTF-8/);
      await expectInvalid(signed.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"'), /encoding "ISO-8859-1"/);
      await expectInvalid(signed.replace('<user>', '<user><!-- a -- b -->'), /malformed comment/);
      await expectInvalid(signed.replaceAll('userBlocksExport', 'somethingElse'), /not a sis-block-export export/);
      await expectInvalid('', /root element/);
    });

    it('a missing file', async () => {
      const error = await expectRejection(verifyExport(path.join(dir, 'nope.xml'), rsa.publicKeyObject));
      expect(error.code).to.equal('SIGNATURE_INVALID');
      expect(error.message).to.match(/nope\.xml does not exist/);
    });

    it('an unusable public key (KEY_INVALID)', async () => {
      const target = file(signed);
      for (const [pem, reason] of [
        ['not a key', /not a PEM file/],
        [fs.readFileSync(rsa.privateKey, 'utf8'), /holds a private key/],
        ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', /not a readable PEM public key/],
      ] as const) {
        const error = await expectRejection(verifyExport(target, pem));
        expect(error.code).to.equal('KEY_INVALID');
        expect(error.message).to.match(reason);
      }
      const privateKeyObject = await expectRejection(verifyExport(target, rsa.key.privateKey));
      expect(privateKeyObject.code).to.equal('KEY_INVALID');
    });
  });
});
