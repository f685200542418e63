import { expect } from 'chai';
import fs from 'node:fs';
import { canonicalizeDocument } from '../../../daemon/signing/c14n';
import { signDocument } from '../../../daemon/signing/xmldsig';
import { type ExportUser } from '../../../daemon/xmlWriter';
import { xmllintCanonical } from '../../helpers/xmllint';
import { TRICKY_USERS, USERS, makeKeyFiles, tempDir, unsignedExport, writeTemp, type KeyFiles } from './helpers';

/** Deterministic pseudo-random numbers (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', 'Z', '0', ' ', '&', '<', '>', '"', "'", '\t', '\n', '\r', ']]>', '漢', '😀', 'é', '\u2028', '\uFFFD', '\u0001', '\uD800'];

function randomString(random: () => number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return out;
}

describe('daemon/signing/c14n (streaming exclusive C14N)', () => {
  let dir: string;
  let rsa: KeyFiles;
  let signed: string;

  before(async () => {
    dir = tempDir();
    rsa = await makeKeyFiles('rsa', dir);
    signed = signDocument(unsignedExport([...USERS, ...TRICKY_USERS]), rsa.signing);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function expectSameAsXmllint(name: string, xml: string): Promise<void> {
    const file = writeTemp(dir, `${name}.xml`, xml);
    const expected = (await xmllintCanonical(file)).toString('utf8');
    const actual = canonicalizeDocument(xml, { withComments: true });
    if (actual !== expected) {
      let i = 0;
      while (i < actual.length && actual[i] === expected[i]) i++;
      expect.fail(`${name}: differs from xmllint --exc-c14n at ${i}:\n  xmllint: ${JSON.stringify(expected.slice(Math.max(0, i - 60), i + 60))}\n  ours:    ${JSON.stringify(actual.slice(Math.max(0, i - 60), i + 60))}`);
    }
  }

  it('is the identity on the root of a signed export (the writer writes canonical form)', async () => {
    await expectSameAsXmllint('signed', signed);
    const rootStart = signed.indexOf('<userBlocksExport');
    expect(canonicalizeDocument(signed)).to.equal(signed.slice(rootStart, signed.length - 1));
  });

  const variants: [name: string, edit: (xml: string) => string][] = [
    ['comments inside and outside the root', (xml) => xml.replace('<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="UTF-8"?>\n<!-- before -->\n').replace('<user>', '<user><!-- in - side -->') + '<!--after-->\n'],
    ['processing instructions inside and outside the root', (xml) => xml.replace('\n<userBlocksExport', '\n<?before  data ?>\n<userBlocksExport').replace('<blocks>', '<blocks><?pi?><?pi with data?>') + '<?after x?>'],
    ['prefixed XML-DSig namespace and unused declarations', (xml) => xml.replace('<userBlocksExport xmlns=', '<userBlocksExport xmlns:unused="urn:unused" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns=').replace(/<Signature xmlns="[^"]*">(.*)<\/Signature>/, (_all, inner: string) => `<ds:Signature>${inner.replace(/<(\/?)([A-Za-z]+)/g, '<$1ds:$2')}</ds:Signature>`)],
    ['attributes out of order, single quotes, spaces in tags', (xml) => xml.replace(/<summary activeBalanceTotal="([^"]*)" blocks="([^"]*)" skippedMissingMatchId="([^"]*)" users="([^"]*)"><\/summary>/, "<summary  users='$4'\n blocks=\"$2\" skippedMissingMatchId='$3' activeBalanceTotal=\"$1\" ></summary >")],
    ['self-closing empty elements', (xml) => xml.replaceAll('<blocks></blocks>', '<blocks/>').replace(/<summary ([^>]*)><\/summary>/, '<summary $1 />')],
    ['CDATA sections and character references', (xml) => xml.replace('<primaryId>jdoe</primaryId>', '<primaryId><![CDATA[j&d<o>e]]>&#x41;&#66;&apos;&quot;&#13;&#x9;</primaryId>').replace('currency="USD"', 'currency="&#x55;S&#68;&apos;&#9;&#10;&#13;"')],
    ['CRLF line ends and literal whitespace in attribute values', (xml) => xml.replaceAll('\n', '\r\n').replace('currency="USD"', 'currency="U\tS\r\nD"')],
    ['xml: attributes, xmlns="" and prefixed attributes', (xml) => xml.replace('<user>', '<user xml:lang="en" xmlns:p="urn:p" p:z="1" a="2" xml:space="preserve"><x xmlns="" xmlns:q="urn:q" q:b="3" p:c="4"><y xmlns="urn:y"><z xmlns=""></z></y></x>')],
    ['namespace redeclared with the same and another URI', (xml) => xml.replace('<user>', '<user xmlns="urn:sis-block-export:user-blocks:1"><p:w xmlns:p="urn:p1"><p:v xmlns:p="urn:p1"><p:u xmlns:p="urn:p2"></p:u></p:v></p:w>')],
    ['whitespace outside the root and no XML declaration', (xml) => `\n  ${xml.replace('<?xml version="1.0" encoding="UTF-8"?>\n', '')}\n\n`],
  ];
  for (const [name, edit] of variants) {
    it(`matches xmllint --exc-c14n with ${name}`, async () => {
      const xml = edit(signed);
      expect(xml, 'the edit applies').to.not.equal(signed);
      await expectSameAsXmllint(name.replace(/\W+/g, '-'), xml);
    });
  }

  it('matches xmllint --exc-c14n on random exports', async () => {
    const random = prng(20261204);
    const users: ExportUser[] = [];
    for (let i = 0; i < 100; i++) {
      users.push({
        userId: `U${i}${randomString(random, 8)}`,
        primaryId: randomString(random, 12),
        firstName: random() < 0.5 ? randomString(random, 10) : null,
        lastName: random() < 0.5 ? randomString(random, 10) : null,
        accountType: 'EXTERNAL',
        activeBalance: `${i}.00`,
        blocks: random() < 0.5 ? [] : [{ blockType: randomString(random, 5), createdDate: '2026-10-01T12:00:00Z', note: randomString(random, 30) }],
      });
    }
    const xml = signDocument(unsignedExport(users, { currency: 'USD', generatedAt: '2026-12-04T02:00:00Z', matchIdType: randomString(random, 20), profile: randomString(random, 20), runId: 'r' }), rsa.signing);
    await expectSameAsXmllint('random', xml);
  });

  it('drops comments unless asked to keep them', () => {
    expect(canonicalizeDocument('<!--a--><r><!--b-->x</r><!--c-->')).to.equal('<r>x</r>');
    expect(canonicalizeDocument('<!--a--><r><!--b-->x</r><!--c-->', { withComments: true })).to.equal('<!--a-->\n<r><!--b-->x</r>\n<!--c-->');
  });

  it('refuses a DOCTYPE', () => {
    expect(() => canonicalizeDocument('<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>')).to.throw(/DOCTYPE/);
  });
});
