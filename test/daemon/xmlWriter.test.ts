// chai 6 is ESM-only; with `module: node16` TypeScript refuses a static import of it from
// CommonJS (TS1479) although Node >= 20.19 can require() it. Take its types with an
// import-mode type import and load it with require().
import type * as Chai from 'chai' with { 'resolution-mode': 'import' };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { expect } = require('chai') as typeof Chai;
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  EXPORT_FORMAT_VERSION,
  EXPORT_NAMESPACE,
  EXPORT_ROOT_END_TAG,
  ExportHeader,
  ExportSummary,
  ExportUser,
  ExportXmlWriter,
  escapeAttribute,
  escapeText,
  stripIllegalXmlChars,
} from '../../daemon/xmlWriter';
import { requireTool, xmllintCanonical, xmllintValidate } from '../helpers/xmllint';

const HEADER: ExportHeader = {
  currency: 'USD',
  generatedAt: '2026-12-04T02:00:00Z',
  matchIdType: 'STUDENT_ID',
  profile: 'main-campus',
  runId: '20261204T020000Z-7f3a',
};

const FULL_USER: ExportUser = {
  userId: 'S0001',
  primaryId: 'jdoe',
  firstName: 'Jane',
  lastName: 'Doe',
  userGroup: 'UG',
  accountType: 'EXTERNAL',
  activeBalance: '12.50',
  blocks: [
    {
      blockType: 'CASH',
      description: 'Unpaid bill',
      createdDate: '2026-10-01T12:00:00Z',
      expiryDate: '2027-01-01T00:00:00Z',
      note: 'Call the patron',
    },
    { blockType: 'OVERDUE', createdDate: '2026-11-15T08:30:00Z', description: null, expiryDate: undefined, note: '' },
  ],
};

const BARE_USER: ExportUser = {
  userId: 'S0002',
  primaryId: 'asmith',
  accountType: 'INTERNAL',
  activeBalance: '0.00',
  blocks: [],
};

const SUMMARY: ExportSummary = { users: 2, blocks: 2, activeBalanceTotal: '12.50', skippedMissingMatchId: 3 };

const EXPECTED_SMALL_DOCUMENT =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<userBlocksExport xmlns="urn:sis-block-export:user-blocks:1" currency="USD" generatedAt="2026-12-04T02:00:00Z" matchIdType="STUDENT_ID" profile="main-campus" runId="20261204T020000Z-7f3a" version="1">\n' +
  '  <user>\n' +
  '    <userId>S0001</userId>\n' +
  '    <primaryId>jdoe</primaryId>\n' +
  '    <firstName>Jane</firstName>\n' +
  '    <lastName>Doe</lastName>\n' +
  '    <userGroup>UG</userGroup>\n' +
  '    <accountType>EXTERNAL</accountType>\n' +
  '    <activeBalance>12.50</activeBalance>\n' +
  '    <blocks>\n' +
  '      <block>\n' +
  '        <blockType>CASH</blockType>\n' +
  '        <description>Unpaid bill</description>\n' +
  '        <createdDate>2026-10-01T12:00:00Z</createdDate>\n' +
  '        <expiryDate>2027-01-01T00:00:00Z</expiryDate>\n' +
  '        <note>Call the patron</note>\n' +
  '      </block>\n' +
  '      <block>\n' +
  '        <blockType>OVERDUE</blockType>\n' +
  '        <createdDate>2026-11-15T08:30:00Z</createdDate>\n' +
  '      </block>\n' +
  '    </blocks>\n' +
  '  </user>\n' +
  '  <user>\n' +
  '    <userId>S0002</userId>\n' +
  '    <primaryId>asmith</primaryId>\n' +
  '    <accountType>INTERNAL</accountType>\n' +
  '    <activeBalance>0.00</activeBalance>\n' +
  '    <blocks></blocks>\n' +
  '  </user>\n' +
  '  <summary activeBalanceTotal="12.50" blocks="2" skippedMissingMatchId="3" users="2"></summary>\n' +
  '</userBlocksExport>\n';

/** Every character XML 1.0 cannot carry that the tests use, as separate strings. */
const C0_ILLEGAL: string[] = [];
for (let cp = 0; cp < 0x20; cp += 1) {
  if (cp !== 0x09 && cp !== 0x0a && cp !== 0x0d) C0_ILLEGAL.push(String.fromCharCode(cp));
}
// Low surrogates first, then high ones, so that joining them never forms a valid pair.
const OTHER_ILLEGAL = ['\uFFFE', '\uFFFF', '\uDC00', '\uDFFF', '\uD800', '\uDBFF'];

/** A string with everything tricky that must survive (escaped) and everything that must not. */
const TRICKY_KEPT = `a&b<c>d]]>e'f"g\th\ri\r\nj\nk 漢字 😀 𠀀 é \u2028 \uE000 \uFFFD \u{10FFFF} &amp; &#x9;`;
const TRICKY = `${TRICKY_KEPT}${C0_ILLEGAL.join('')}${OTHER_ILLEGAL.join('')}end`;
const TRICKY_DROPPED = C0_ILLEGAL.length + OTHER_ILLEGAL.length;

function document(writer: ExportXmlWriter, header: ExportHeader, users: readonly ExportUser[], summary: ExportSummary): string {
  let out = writer.prolog() + writer.open(header);
  for (const user of users) out += writer.user(user);
  return out + writer.summary(summary) + writer.close();
}

/** The bytes from `<userBlocksExport` through `</userBlocksExport>`: what exc-c14n must reproduce. */
function rootSpan(xml: string): Buffer {
  const start = xml.indexOf('<userBlocksExport');
  const end = xml.lastIndexOf(EXPORT_ROOT_END_TAG) + EXPORT_ROOT_END_TAG.length;
  expect(start).to.be.greaterThan(0);
  expect(end).to.be.greaterThan(start);
  return Buffer.from(xml.slice(start, end), 'utf8');
}

/** A small deterministic PRNG (mulberry32). */
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

const ALPHABET = [
  ...'&<>"\'\t\r\n ]]>ab Z09-.:',
  ...C0_ILLEGAL,
  ...OTHER_ILLEGAL,
  '漢',
  'é',
  '😀',
  '𠀀',
  '\u{10FFFF}',
  '\uFFFD',
  '\u0085',
  '\u007F',
];

function randomString(random: () => number, maxLength: number): string {
  const length = Math.floor(random() * maxLength);
  let s = '';
  for (let i = 0; i < length; i += 1) s += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return s;
}

describe('daemon/xmlWriter', () => {
  let dir: string;
  let counter = 0;

  function tempFile(content: string | Buffer, name = 'export'): string {
    counter += 1;
    const file = path.join(dir, `${name}-${counter}.xml`);
    writeFileSync(file, content);
    return file;
  }

  async function expectValid(xml: string): Promise<void> {
    const result = await xmllintValidate(tempFile(xml));
    expect(result.ok, result.output).to.equal(true);
  }

  async function expectInvalid(xml: string, message: RegExp): Promise<void> {
    const result = await xmllintValidate(tempFile(xml, 'invalid'));
    expect(result.ok, result.output).to.equal(false);
    expect(result.output).to.match(message);
  }

  before(() => {
    requireTool('xmllint');
    dir = mkdtempSync(path.join(os.tmpdir(), 'sbe-xmlwriter-'));
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('constants', () => {
    it('names the namespace and the format version', () => {
      expect(EXPORT_NAMESPACE).to.equal('urn:sis-block-export:user-blocks:1');
      expect(EXPORT_FORMAT_VERSION).to.equal('1');
    });
  });

  describe('layout', () => {
    it('writes the exact bytes of a small document', async () => {
      const writer = new ExportXmlWriter();
      const xml = document(writer, HEADER, [FULL_USER, BARE_USER], SUMMARY);
      expect(xml).to.equal(EXPECTED_SMALL_DOCUMENT);
      expect(writer.droppedCharacters).to.equal(0);
      await expectValid(xml);
    });

    it('returns one chunk per call', () => {
      const writer = new ExportXmlWriter();
      expect(writer.prolog()).to.equal('<?xml version="1.0" encoding="UTF-8"?>\n');
      expect(writer.close()).to.equal('</userBlocksExport>\n');
      expect(writer.user(BARE_USER)).to.equal(
        '  <user>\n    <userId>S0002</userId>\n    <primaryId>asmith</primaryId>\n' +
          '    <accountType>INTERNAL</accountType>\n    <activeBalance>0.00</activeBalance>\n' +
          '    <blocks></blocks>\n  </user>\n',
      );
      expect(writer.summary({ users: 0, blocks: 0, activeBalanceTotal: '0.00', skippedMissingMatchId: 0 })).to.equal(
        '  <summary activeBalanceTotal="0.00" blocks="0" skippedMissingMatchId="0" users="0"></summary>\n',
      );
    });

    it('writes a valid document without users', async () => {
      const writer = new ExportXmlWriter();
      const xml = document(writer, HEADER, [], { users: 0, blocks: 0, activeBalanceTotal: '0.00', skippedMissingMatchId: 0 });
      expect(xml).to.not.include('/>');
      await expectValid(xml);
    });

    it('omits null, undefined and empty optional values but keeps values emptied by dropping', async () => {
      const writer = new ExportXmlWriter();
      const chunk = writer.user({
        ...BARE_USER,
        firstName: '',
        lastName: null,
        userGroup: '\u0000\u0001',
        blocks: [{ blockType: 'X', createdDate: '2026-01-01T00:00:00Z', description: '', note: '\uFFFF' }],
      });
      expect(chunk).to.not.include('firstName');
      expect(chunk).to.not.include('lastName');
      expect(chunk).to.include('    <userGroup></userGroup>\n');
      expect(chunk).to.not.include('description');
      expect(chunk).to.not.include('expiryDate');
      expect(chunk).to.include('        <note></note>\n');
      expect(writer.droppedCharacters).to.equal(3);
      await expectValid(writer.prolog() + writer.open(HEADER) + chunk + writer.summary(SUMMARY) + writer.close());
    });

    it('rejects missing required values and bad counts', () => {
      const writer = new ExportXmlWriter();
      expect(() => writer.user({ ...BARE_USER, userId: undefined as unknown as string })).to.throw(TypeError, /userId/);
      expect(() => writer.summary({ ...SUMMARY, users: -1 })).to.throw(TypeError, /users/);
      expect(() => writer.summary({ ...SUMMARY, blocks: 1.5 })).to.throw(TypeError, /blocks/);
    });
  });

  describe('escaping', () => {
    it('escapes text exactly as C14N', () => {
      expect(escapeText(`a&b<c>d]]>e'f"g\th\ri\nj`)).to.equal(`a&amp;b&lt;c&gt;d]]&gt;e'f"g\th&#xD;i\nj`);
      expect(escapeText('&amp;')).to.equal('&amp;amp;');
      expect(escapeText('plain 漢字 😀')).to.equal('plain 漢字 😀');
      expect(escapeText('')).to.equal('');
    });

    it('escapes attribute values exactly as C14N', () => {
      expect(escapeAttribute(`a&b<c>d]]>e'f"g\th\ri\nj`)).to.equal(`a&amp;b&lt;c>d]]>e'f&quot;g&#x9;h&#xD;i&#xA;j`);
      expect(escapeAttribute('plain 漢字 😀')).to.equal('plain 漢字 😀');
    });

    it('does not drop characters in escapeText / escapeAttribute', () => {
      expect(escapeText('\u0000&')).to.equal('\u0000&amp;');
      expect(escapeAttribute('\uD800"')).to.equal('\uD800&quot;');
    });

    it('drops and counts every character XML 1.0 cannot carry', () => {
      for (const ch of [...C0_ILLEGAL, ...OTHER_ILLEGAL]) {
        expect(stripIllegalXmlChars(`x${ch}y`), JSON.stringify(ch)).to.deep.equal({ text: 'xy', dropped: 1 });
      }
      expect(stripIllegalXmlChars('\t\n\r \u007F\u0085\uD7FF\uE000\uFFFD')).to.deep.equal({
        text: '\t\n\r \u007F\u0085\uD7FF\uE000\uFFFD',
        dropped: 0,
      });
    });

    it('keeps valid surrogate pairs and drops lone surrogates', () => {
      expect(stripIllegalXmlChars('😀𠀀\u{10000}\u{10FFFF}')).to.deep.equal({ text: '😀𠀀\u{10000}\u{10FFFF}', dropped: 0 });
      expect(stripIllegalXmlChars('\uD83D')).to.deep.equal({ text: '', dropped: 1 });
      expect(stripIllegalXmlChars('a\uDE00b')).to.deep.equal({ text: 'ab', dropped: 1 });
      // reversed pair: two lone surrogates
      expect(stripIllegalXmlChars('\uDE00\uD83D')).to.deep.equal({ text: '', dropped: 2 });
      // a high surrogate followed by a valid pair
      expect(stripIllegalXmlChars('\uD83D\uD83D\uDE00')).to.deep.equal({ text: '😀', dropped: 1 });
      // a valid pair followed by a lone low surrogate
      expect(stripIllegalXmlChars('\uD83D\uDE00\uDE00')).to.deep.equal({ text: '😀', dropped: 1 });
      // two halves that are each illegal alone form a valid pair when adjacent
      expect(stripIllegalXmlChars('\uDBFF' + '\uDC00')).to.deep.equal({ text: '\u{10FC00}', dropped: 0 });
    });

    it('drops, counts and escapes in every element and attribute the writer produces', async () => {
      const writer = new ExportXmlWriter();
      const header: ExportHeader = { ...HEADER, matchIdType: TRICKY, profile: TRICKY, runId: TRICKY };
      const user: ExportUser = {
        userId: TRICKY,
        primaryId: TRICKY,
        firstName: TRICKY,
        lastName: TRICKY,
        userGroup: TRICKY,
        accountType: 'EXTERNAL',
        activeBalance: '-3.00',
        blocks: [
          {
            blockType: TRICKY,
            description: TRICKY,
            createdDate: '2026-10-01T12:00:00Z',
            expiryDate: '2027-01-01T00:00:00Z',
            note: TRICKY,
          },
        ],
      };
      const xml = document(writer, header, [user], { ...SUMMARY, activeBalanceTotal: '-3.00' });
      // 3 attributes + 5 user fields + 3 block fields
      expect(writer.droppedCharacters).to.equal(11 * TRICKY_DROPPED);
      const keptText = `a&amp;b&lt;c&gt;d]]&gt;e'f"g\th&#xD;i&#xD;\nj\nk 漢字 😀 𠀀 é \u2028 \uE000 \uFFFD \u{10FFFF} &amp;amp; &amp;#x9;end`;
      const keptAttribute = `a&amp;b&lt;c>d]]>e'f&quot;g&#x9;h&#xD;i&#xD;&#xA;j&#xA;k 漢字 😀 𠀀 é \u2028 \uE000 \uFFFD \u{10FFFF} &amp;amp; &amp;#x9;end`;
      expect(xml).to.include(`<userId>${keptText}</userId>`);
      expect(xml).to.include(`<note>${keptText}</note>`);
      expect(xml).to.include(` profile="${keptAttribute}" `);
      expect(xml).to.include(` runId="${keptAttribute}" `);
      expect(Buffer.from(xml, 'utf8').toString('utf8')).to.equal(xml); // no lone surrogates left
      await expectValid(xml);
    });
  });

  describe('validation against the XSD', () => {
    const valid = EXPECTED_SMALL_DOCUMENT;

    it('accepts a signed export (a ds:Signature after the summary)', async () => {
      const signature =
        '  <Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo></SignedInfo><SignatureValue>AAAA</SignatureValue></Signature>\n';
      await expectValid(valid.replace('</userBlocksExport>', `${signature}</userBlocksExport>`));
    });

    it('rejects a user without <blocks>', async () => {
      await expectInvalid(valid.replace('    <blocks></blocks>\n', ''), /blocks/);
    });

    it('rejects a bad accountType', async () => {
      await expectInvalid(valid.replace('<accountType>INTERNAL<', '<accountType>STAFF<'), /accountType|STAFF/);
    });

    it('rejects elements out of order', async () => {
      await expectInvalid(
        valid.replace('    <firstName>Jane</firstName>\n    <lastName>Doe</lastName>\n', '    <lastName>Doe</lastName>\n    <firstName>Jane</firstName>\n'),
        /firstName|lastName/,
      );
    });

    it('rejects an empty userId', async () => {
      await expectInvalid(valid.replace('<userId>S0002</userId>', '<userId></userId>'), /userId|length/);
    });

    it('rejects bad amounts, timestamps, currency and version', async () => {
      await expectInvalid(valid.replace('<activeBalance>12.50<', '<activeBalance>12,50<'), /activeBalance/);
      await expectInvalid(valid.replace('<activeBalance>12.50<', '<activeBalance>+12.50<'), /activeBalance/);
      await expectInvalid(valid.replace('<createdDate>2026-10-01T12:00:00Z<', '<createdDate>2026-10-01T12:00:00+02:00<'), /createdDate/);
      await expectInvalid(valid.replace('<expiryDate>2027-01-01T00:00:00Z<', '<expiryDate>2027-01-01<'), /expiryDate/);
      await expectInvalid(valid.replace('currency="USD"', 'currency="usd"'), /currency/);
      await expectInvalid(valid.replace('version="1"', 'version="2"'), /version/);
    });

    it('rejects a missing summary, a bad summary count and a foreign trailing element', async () => {
      await expectInvalid(valid.replace(/ {2}<summary [^\n]*\n/, ''), /summary|Missing child/);
      await expectInvalid(valid.replace('users="2"', 'users="-2"'), /users/);
      await expectInvalid(valid.replace('</userBlocksExport>', '  <extra></extra>\n</userBlocksExport>'), /extra/);
    });

    it('rejects a document in the wrong namespace', async () => {
      await expectInvalid(valid.replace(EXPORT_NAMESPACE, 'urn:other'), /userBlocksExport|No matching global declaration/);
    });
  });

  describe('canonical form', () => {
    async function expectCanonical(xml: string): Promise<void> {
      const canonical = await xmllintCanonical(tempFile(xml, 'c14n'));
      const span = rootSpan(xml);
      if (!canonical.equals(span)) {
        // show the first difference in a readable way
        let i = 0;
        while (i < canonical.length && i < span.length && canonical[i] === span[i]) i += 1;
        expect.fail(
          `exc-c14n differs at byte ${i}:\n  c14n:   ${JSON.stringify(canonical.subarray(Math.max(0, i - 40), i + 40).toString('utf8'))}\n` +
            `  writer: ${JSON.stringify(span.subarray(Math.max(0, i - 40), i + 40).toString('utf8'))}`,
        );
      }
    }

    it('is byte-identical to xmllint --exc-c14n for the small document', async () => {
      await expectCanonical(EXPECTED_SMALL_DOCUMENT);
    });

    it('is byte-identical to xmllint --exc-c14n for a document full of tricky characters', async () => {
      const writer = new ExportXmlWriter();
      const header: ExportHeader = { ...HEADER, matchIdType: TRICKY, profile: TRICKY, runId: TRICKY };
      const users: ExportUser[] = [
        {
          userId: TRICKY,
          primaryId: `${TRICKY}\r\n`,
          firstName: `\r${TRICKY}\t`,
          lastName: '  leading and trailing spaces  ',
          userGroup: '\u0000\u0001\uFFFE',
          accountType: 'INTERNAL',
          activeBalance: '1234567.89',
          blocks: [
            {
              blockType: TRICKY,
              description: '\n\n\n',
              createdDate: '2026-10-01T12:00:00Z',
              expiryDate: '2027-01-01T00:00:00Z',
              note: '<![CDATA[ not a CDATA section ]]> <!-- not a comment --> <?pi not a pi?> &entity;',
            },
            { blockType: '\r', createdDate: '2026-10-02T12:00:00Z', note: '\r\r\n\n\t\t' },
          ],
        },
        BARE_USER,
      ];
      const xml = document(writer, header, users, SUMMARY);
      expect(writer.droppedCharacters).to.be.greaterThan(0);
      await expectValid(xml);
      await expectCanonical(xml);
    });

    it('is byte-identical to xmllint --exc-c14n for random strings', async () => {
      const random = prng(20261204);
      const writer = new ExportXmlWriter();
      const users: ExportUser[] = [];
      for (let i = 0; i < 200; i += 1) {
        const blocks = [];
        const blockCount = Math.floor(random() * 3);
        for (let b = 0; b < blockCount; b += 1) {
          blocks.push({
            blockType: `T${randomString(random, 8)}`,
            description: random() < 0.5 ? randomString(random, 30) : null,
            createdDate: '2026-10-01T12:00:00Z',
            expiryDate: random() < 0.5 ? '2027-01-01T00:00:00Z' : undefined,
            note: random() < 0.5 ? randomString(random, 30) : undefined,
          });
        }
        users.push({
          userId: `U${i}${randomString(random, 10)}`,
          primaryId: `P${randomString(random, 10)}`,
          firstName: random() < 0.7 ? randomString(random, 20) : null,
          lastName: random() < 0.7 ? randomString(random, 20) : null,
          userGroup: random() < 0.7 ? randomString(random, 20) : null,
          accountType: random() < 0.5 ? 'INTERNAL' : 'EXTERNAL',
          activeBalance: `${i}.00`,
          blocks,
        });
      }
      const header: ExportHeader = { ...HEADER, profile: `p${randomString(random, 40)}`, runId: `r${randomString(random, 40)}` };
      const xml = document(writer, header, users, SUMMARY);
      expect(writer.droppedCharacters).to.be.greaterThan(0);
      await expectValid(xml);
      await expectCanonical(xml);
    });
  });
});
