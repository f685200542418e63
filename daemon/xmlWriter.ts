/**
 * The streaming XML serializer for the export file (SPEC 5).
 *
 * It never holds more than one user: every method returns a string chunk that the caller
 * writes to the file, in this order:
 *
 *   prolog() open(header) user(u)* summary(s) [signature, written by the signer] close()
 *
 * Everything from the start tag of the root through its end tag is written directly in
 * Exclusive XML Canonicalization form (exc-c14n, without comments), so the signing step
 * (SPEC 6) can digest these bytes as they stream by, without building a DOM:
 *
 * - no self-closing tags (`<blocks></blocks>`);
 * - attributes in canonical order: the default namespace declaration first, then the
 *   unqualified attributes sorted by name in code-point order; values in double quotes;
 * - C14N escaping: text `&` `<` `>` CR; attribute values `&` `<` `"` TAB LF CR; nothing else
 *   (no `&apos;`, no numeric escapes of non-ASCII; the output is UTF-8);
 * - the whitespace between elements is part of the canonical form, so it is fixed here:
 *   two spaces per level, `\n` line ends.
 *
 * Characters XML 1.0 cannot carry (outside `#x9 | #xA | #xD | [#x20-#xD7FF] |
 * [#xE000-#xFFFD] | [#x10000-#x10FFFF]`, including lone surrogates) are dropped and counted
 * in `droppedCharacters` (one per code point / lone surrogate).
 *
 * The prolog and the newline after the root end tag are outside the canonical form (C14N
 * of a document omits the XML declaration and anything outside the document element).
 */

export const EXPORT_NAMESPACE = 'urn:sis-block-export:user-blocks:1';
export const EXPORT_FORMAT_VERSION = '1';
/** Local name of the root element. */
export const EXPORT_ROOT_ELEMENT = 'userBlocksExport';
/** The exact end tag of the root, as written by `close()` (without its trailing newline). */
export const EXPORT_ROOT_END_TAG = `</${EXPORT_ROOT_ELEMENT}>`;

export interface ExportHeader {
  currency: string;
  generatedAt: string;
  matchIdType: string;
  profile: string;
  runId: string;
}

export interface ExportBlock {
  blockType: string;
  description?: string | null;
  createdDate: string;
  expiryDate?: string | null;
  note?: string | null;
}

export interface ExportUser {
  userId: string;
  primaryId: string;
  firstName?: string | null;
  lastName?: string | null;
  userGroup?: string | null;
  accountType: string;
  activeBalance: string;
  blocks: readonly ExportBlock[];
}

export interface ExportSummary {
  users: number;
  blocks: number;
  activeBalanceTotal: string;
  skippedMissingMatchId: number;
}

// ---------------------------------------------------------------------------------------
// Character handling

/**
 * One code point XML 1.0 cannot carry. With the `u` flag a valid surrogate pair is one code
 * point (in the allowed astral range) while a lone surrogate is matched on its own.
 */
const ILLEGAL_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const ILLEGAL_XML_CHARS = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Anything that needs work in text content: an escapable character or an illegal one. */
const TEXT_NEEDS_WORK = /[&<>\r]|[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
/** Anything that needs work in an attribute value. */
const ATTRIBUTE_NEEDS_WORK = /[&<"\t\n\r]|[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

const TEXT_SPECIALS = /[&<>\r]/g;
const ATTRIBUTE_SPECIALS = /[&<"\t\n\r]/g;

const TEXT_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '\r': '&#xD;',
};

const ATTRIBUTE_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '"': '&quot;',
  '\t': '&#x9;',
  '\n': '&#xA;',
  '\r': '&#xD;',
};

function textEscape(ch: string): string {
  return TEXT_ESCAPES[ch] as string;
}

function attributeEscape(ch: string): string {
  return ATTRIBUTE_ESCAPES[ch] as string;
}

/**
 * Removes the characters XML 1.0 cannot carry. `dropped` counts code points (a lone
 * surrogate counts as one; a valid surrogate pair is kept).
 */
export function stripIllegalXmlChars(s: string): { text: string; dropped: number } {
  if (!ILLEGAL_XML_CHAR.test(s)) return { text: s, dropped: 0 };
  let dropped = 0;
  const text = s.replace(ILLEGAL_XML_CHARS, () => {
    dropped += 1;
    return '';
  });
  return { text, dropped };
}

/** C14N text escaping (`&` `<` `>` CR). Does not drop illegal characters. */
export function escapeText(s: string): string {
  TEXT_SPECIALS.lastIndex = 0;
  return TEXT_SPECIALS.test(s) ? s.replace(TEXT_SPECIALS, textEscape) : s;
}

/** C14N attribute value escaping (`&` `<` `"` TAB LF CR). Does not drop illegal characters. */
export function escapeAttribute(s: string): string {
  ATTRIBUTE_SPECIALS.lastIndex = 0;
  return ATTRIBUTE_SPECIALS.test(s) ? s.replace(ATTRIBUTE_SPECIALS, attributeEscape) : s;
}

// ---------------------------------------------------------------------------------------
// The writer

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') {
    throw new TypeError(`export XML: ${what} must be a string, got ${value === null ? 'null' : typeof value}`);
  }
  return value;
}

function requireCount(value: unknown, what: string): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`export XML: ${what} must be a non-negative integer, got ${String(value)}`);
  }
  return String(value);
}

/** True when an optional value is absent: its element is omitted. */
function isAbsent(value: string | null | undefined): value is null | undefined | '' {
  return value === null || value === undefined || value === '';
}

export class ExportXmlWriter {
  /** XML-illegal characters dropped so far (over all chunks produced by this writer). */
  droppedCharacters = 0;

  /** Text content: drops illegal characters (counting them) and escapes. */
  text(value: string): string {
    if (!TEXT_NEEDS_WORK.test(value)) return value;
    return escapeText(this.strip(value));
  }

  /** Attribute value content: drops illegal characters (counting them) and escapes. */
  attribute(value: string): string {
    if (!ATTRIBUTE_NEEDS_WORK.test(value)) return value;
    return escapeAttribute(this.strip(value));
  }

  private strip(value: string): string {
    const { text, dropped } = stripIllegalXmlChars(value);
    this.droppedCharacters += dropped;
    return text;
  }

  private element(indent: string, name: string, value: string): string {
    return `${indent}<${name}>${this.text(value)}</${name}>\n`;
  }

  /**
   * An optional element: omitted when the value is null, undefined or ''. Otherwise it is
   * written, even if it became empty after dropping illegal characters (`<note></note>`):
   * the source had a value, and the dropped characters are counted and logged.
   */
  private optional(indent: string, name: string, value: string | null | undefined): string {
    return isAbsent(value) ? '' : this.element(indent, name, requireString(value, name));
  }

  /** The XML declaration and its line end. */
  prolog(): string {
    return '<?xml version="1.0" encoding="UTF-8"?>\n';
  }

  /** The start tag of the root, with its attributes in canonical order. */
  open(header: ExportHeader): string {
    return (
      `<${EXPORT_ROOT_ELEMENT} xmlns="${EXPORT_NAMESPACE}"` +
      ` currency="${this.attribute(requireString(header.currency, 'currency'))}"` +
      ` generatedAt="${this.attribute(requireString(header.generatedAt, 'generatedAt'))}"` +
      ` matchIdType="${this.attribute(requireString(header.matchIdType, 'matchIdType'))}"` +
      ` profile="${this.attribute(requireString(header.profile, 'profile'))}"` +
      ` runId="${this.attribute(requireString(header.runId, 'runId'))}"` +
      ` version="${EXPORT_FORMAT_VERSION}">\n`
    );
  }

  /** One `<user>` element at depth 1, ending in '\n'. */
  user(user: ExportUser): string {
    let out =
      '  <user>\n' +
      this.element('    ', 'userId', requireString(user.userId, 'userId')) +
      this.element('    ', 'primaryId', requireString(user.primaryId, 'primaryId')) +
      this.optional('    ', 'firstName', user.firstName) +
      this.optional('    ', 'lastName', user.lastName) +
      this.optional('    ', 'userGroup', user.userGroup) +
      this.element('    ', 'accountType', requireString(user.accountType, 'accountType')) +
      this.element('    ', 'activeBalance', requireString(user.activeBalance, 'activeBalance'));
    const blocks = user.blocks;
    if (blocks.length === 0) {
      out += '    <blocks></blocks>\n';
    } else {
      out += '    <blocks>\n';
      for (const block of blocks) {
        out +=
          '      <block>\n' +
          this.element('        ', 'blockType', requireString(block.blockType, 'blockType')) +
          this.optional('        ', 'description', block.description) +
          this.element('        ', 'createdDate', requireString(block.createdDate, 'createdDate')) +
          this.optional('        ', 'expiryDate', block.expiryDate) +
          this.optional('        ', 'note', block.note) +
          '      </block>\n';
      }
      out += '    </blocks>\n';
    }
    return out + '  </user>\n';
  }

  /** The `<summary>` element, attributes in canonical order. */
  summary(summary: ExportSummary): string {
    return (
      `  <summary activeBalanceTotal="${this.attribute(requireString(summary.activeBalanceTotal, 'activeBalanceTotal'))}"` +
      ` blocks="${requireCount(summary.blocks, 'blocks')}"` +
      ` skippedMissingMatchId="${requireCount(summary.skippedMissingMatchId, 'skippedMissingMatchId')}"` +
      ` users="${requireCount(summary.users, 'users')}"></summary>\n`
    );
  }

  /** The end tag of the root and the final line end. */
  close(): string {
    return `${EXPORT_ROOT_END_TAG}\n`;
  }
}
