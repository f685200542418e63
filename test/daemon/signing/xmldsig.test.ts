import { expect } from 'chai';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { verifyExport } from '../../../daemon/signing/verify';
import { ALGORITHM_URIS, SIGNATURE_TAIL, XMLDSIG_NAMESPACE, XmlDsigSigner, signDocument } from '../../../daemon/signing/xmldsig';
import { ExportXmlWriter, type ExportUser } from '../../../daemon/xmlWriter';
import { xmllintCanonical, xmllintValidate } from '../../helpers/xmllint';
import { HEADER, KEY_NAME, TRICKY_USERS, USERS, exportChunks, makeKeyFiles, tempDir, unsignedExport, writeTemp, xmlsecVerify, type KeyFiles } from './helpers';

const SIGNATURE_ELEMENT = /  <Signature xmlns="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#">.*<\/Signature>\n/;

function withoutSignature(signed: string): string {
  return signed.replace(/<Signature xmlns=.*<\/Signature>/, '');
}

describe('daemon/signing/xmldsig', () => {
  let dir: string;
  const keys: Record<'rsa' | 'ec', KeyFiles> = {} as Record<'rsa' | 'ec', KeyFiles>;

  before(async () => {
    dir = tempDir();
    keys.rsa = await makeKeyFiles('rsa', dir);
    keys.ec = await makeKeyFiles('ec', dir);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const type of ['rsa', 'ec'] as const) {
    describe(type === 'rsa' ? 'RSA-SHA256' : 'ECDSA-SHA256 (P-256)', () => {
      const documents: [name: string, users: ExportUser[]][] = [
        ['an ordinary export', USERS],
        ['an export full of escaped characters (& < > quotes CR TAB CJK emoji)', TRICKY_USERS],
        ['an empty export (no users)', []],
      ];
      for (const [name, users] of documents) {
        it(`xmlsec1 and verifyExport accept ${name}; it stays valid against the XSD`, async () => {
          const signed = signDocument(unsignedExport(users, { ...HEADER, profile: users === TRICKY_USERS ? `p${users[0]!.primaryId}` : HEADER.profile }), keys[type].signing);
          const file = writeTemp(dir, `${type}-${users.length}-${users === TRICKY_USERS ? 'tricky' : 'plain'}.xml`, signed);
          const xmlsec = await xmlsecVerify(file, keys[type].publicKey);
          expect(xmlsec.code, xmlsec.output).to.equal(0);
          expect(xmlsec.output).to.match(/^OK$/m);
          expect(await verifyExport(file, fs.readFileSync(keys[type].publicKey, 'utf8'))).to.deep.equal({ valid: true, keyName: KEY_NAME });
          const xsd = await xmllintValidate(file);
          expect(xsd.ok, xsd.output).to.equal(true);
        });
      }

      it('xmlsec1 rejects a changed byte and a wrong key', async () => {
        const signed = signDocument(unsignedExport(USERS), keys[type].signing);
        const changed = writeTemp(dir, `${type}-changed.xml`, signed.replace('<primaryId>jdoe<', '<primaryId>jdoF<'));
        expect((await xmlsecVerify(changed, keys[type].publicKey)).code).to.not.equal(0);
        const file = writeTemp(dir, `${type}-ok.xml`, signed);
        const other = await makeKeyFiles(type, tempDir());
        try {
          expect((await xmlsecVerify(file, other.publicKey)).code).to.not.equal(0);
        } finally {
          fs.rmSync(other.dir, { recursive: true, force: true });
        }
      });

      it('writes one canonical line: indent, default namespace, no self-closing tags, the agreed algorithms', () => {
        const { body } = exportChunks(USERS);
        const signer = new XmlDsigSigner(keys[type].signing);
        for (const chunk of body) signer.update(chunk);
        const block = signer.signatureBlock();
        expect(block).to.match(/^ {2}<Signature xmlns="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#"><SignedInfo>/);
        expect(block.endsWith('</Signature>\n')).to.equal(true);
        expect(block.slice(0, -1)).to.not.include('\n');
        expect(block).to.not.include('/>');
        expect(block).to.include(`<CanonicalizationMethod Algorithm="${ALGORITHM_URIS.excC14n}"></CanonicalizationMethod>`);
        expect(block).to.include(`<SignatureMethod Algorithm="${ALGORITHM_URIS[keys[type].key.algorithm]}"></SignatureMethod>`);
        expect(block).to.include(
          `<Reference URI=""><Transforms><Transform Algorithm="${ALGORITHM_URIS.envelopedSignature}"></Transform><Transform Algorithm="${ALGORITHM_URIS.excC14n}"></Transform></Transforms>` +
            `<DigestMethod Algorithm="${ALGORITHM_URIS.sha256}"></DigestMethod>`,
        );
        expect(block).to.include(`<KeyInfo><KeyName>${KEY_NAME}</KeyName></KeyInfo>`);
        const value = Buffer.from(/<SignatureValue>([^<]*)<\/SignatureValue>/.exec(block)![1]!, 'base64');
        // ECDSA in XML-DSig is r||s (32 + 32 bytes for P-256), not DER.
        expect(value.length).to.equal(type === 'rsa' ? 256 : 64);
      });

      it('digests what xmllint --exc-c14n makes of the document without the Signature element', async () => {
        const signed = signDocument(unsignedExport(TRICKY_USERS), keys[type].signing);
        const stripped = writeTemp(dir, `${type}-stripped.xml`, withoutSignature(signed));
        const canonical = await xmllintCanonical(stripped);
        expect(canonical.toString('utf8').endsWith(`\n${SIGNATURE_TAIL}`)).to.equal(true);
        const digest = /<DigestValue>([^<]*)<\/DigestValue>/.exec(signed)![1];
        expect(createHash('sha256').update(canonical).digest('base64')).to.equal(digest);
      });
    });
  }

  it('gives the same signature however the stream is cut (strings, bytes split inside characters)', () => {
    // RSA PKCS#1 v1.5 signatures are deterministic, so equal inputs give equal blocks.
    const { prolog, body, close } = exportChunks(TRICKY_USERS);
    const signer = new XmlDsigSigner(keys.rsa.signing);
    for (const chunk of body) signer.update(chunk);
    const streamed = prolog + body.join('') + signer.signatureBlock() + close;
    expect(signDocument(prolog + body.join('') + close, keys.rsa.signing)).to.equal(streamed);
  });

  it('refuses misuse: the prolog fed, update after signatureBlock, two blocks, no input', () => {
    const writer = new ExportXmlWriter();
    expect(() => new XmlDsigSigner(keys.rsa.signing).update(writer.prolog())).to.throw(/after the XML declaration/);
    const signer = new XmlDsigSigner(keys.rsa.signing);
    expect(() => signer.signatureBlock()).to.throw(/before any update/);
    signer.update(writer.open(HEADER));
    signer.signatureBlock();
    expect(() => signer.signatureBlock()).to.throw(/twice/);
    expect(() => signer.update('x')).to.throw(/after signatureBlock/);
    expect(() => new XmlDsigSigner({ key: keys.rsa.key, keyName: '\u0000' })).to.throw(/KeyName/);
  });

  it('escapes the KeyName as text', async () => {
    const signed = signDocument(unsignedExport(USERS), { key: keys.rsa.key, keyName: 'a&b' });
    expect(signed).to.include('<KeyName>a&amp;b</KeyName>');
    const file = writeTemp(dir, 'keyname.xml', signed);
    expect((await verifyExport(file, keys.rsa.publicKeyObject)).keyName).to.equal('a&b');
    expect((await xmlsecVerify(file, keys.rsa.publicKey, 'a&b')).code).to.equal(0);
  });

  describe('streaming', () => {
    function exposeGc(): () => void {
      v8.setFlagsFromString('--expose-gc');
      return vm.runInNewContext('gc') as () => void;
    }

    function syntheticUser(i: number): ExportUser {
      const id = String(i).padStart(7, '0');
      return {
        userId: `S${id}`,
        primaryId: `user${id}@example.edu`,
        firstName: `First${i % 977} & Co`,
        lastName: `Last<${i % 1013}>`,
        userGroup: i % 3 === 0 ? 'UG' : 'GRAD',
        accountType: i % 10 === 0 ? 'INTERNAL' : 'EXTERNAL',
        activeBalance: `${i % 500}.${String(i % 100).padStart(2, '0')}`,
        blocks: [
          { blockType: 'CASH', description: 'Unpaid bill', createdDate: '2026-10-01T12:00:00Z', note: `note ${i} 漢字 😀` },
          ...(i % 2 === 0 ? [{ blockType: 'LOAN', createdDate: '2026-11-01T12:00:00Z', expiryDate: '2027-01-01T00:00:00Z' }] : []),
        ],
      };
    }

    it('signs a 200 000-user export generated on the fly, and verifies it, with flat memory', async function () {
      this.timeout(120_000);
      const gc = exposeGc();
      const users = 200_000;
      const file = path.join(dir, 'large.xml');
      const out = fs.createWriteStream(file);
      const write = async (chunk: string): Promise<void> => {
        if (!out.write(chunk)) await once(out, 'drain');
      };
      const writer = new ExportXmlWriter();
      const signer = new XmlDsigSigner(keys.ec.signing);

      gc();
      const before = process.memoryUsage().heapUsed;
      let peak = 0;
      let bytes = 0;
      await write(writer.prolog());
      const open = writer.open(HEADER);
      signer.update(open);
      await write(open);
      for (let i = 0; i < users; i++) {
        const chunk = writer.user(syntheticUser(i));
        bytes += chunk.length;
        signer.update(chunk);
        await write(chunk);
        if (i % 25_000 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed - before);
        }
      }
      const summary = writer.summary({ users, blocks: users * 1.5, activeBalanceTotal: '0.00', skippedMissingMatchId: 0 });
      signer.update(summary);
      await write(summary);
      await write(signer.signatureBlock());
      out.end(writer.close());
      await once(out, 'finish');
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      expect(bytes, 'the export is large').to.be.greaterThan(100 * 1024 * 1024);
      expect(peak, `heap grew by ${(peak / 1e6).toFixed(1)} MB while signing`).to.be.lessThan(16 * 1024 * 1024);
      expect(grown, `heap grew by ${(grown / 1e6).toFixed(1)} MB after signing`).to.be.lessThan(8 * 1024 * 1024);

      // The verifier streams too: sample the heap while it reads the file.
      gc();
      const baseline = process.memoryUsage().heapUsed;
      let verifyPeak = 0;
      const sampler = setInterval(() => {
        verifyPeak = Math.max(verifyPeak, process.memoryUsage().heapUsed - baseline);
      }, 5);
      try {
        expect(await verifyExport(file, keys.ec.publicKeyObject)).to.deep.equal({ valid: true, keyName: KEY_NAME });
      } finally {
        clearInterval(sampler);
      }
      // Garbage collects lazily, so this bound is loose; a DOM of this file would take gigabytes.
      expect(verifyPeak, `heap grew by ${(verifyPeak / 1e6).toFixed(1)} MB while verifying`).to.be.lessThan(96 * 1024 * 1024);
      fs.rmSync(file);
    });
  });

  it('declares the XML-DSig namespace on Signature only', () => {
    const signed = signDocument(unsignedExport([]), keys.rsa.signing);
    expect(signed).to.match(SIGNATURE_ELEMENT);
    expect(signed.split(`xmlns="${XMLDSIG_NAMESPACE}"`)).to.have.length(2);
  });
});
