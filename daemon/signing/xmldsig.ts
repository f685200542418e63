import { createHash, sign, type Hash } from 'node:crypto';
import { EXPORT_ROOT_END_TAG, escapeText, stripIllegalXmlChars } from '../xmlWriter';
import type { SigningKey, XmlDsigAlgorithm } from './keys';

/**
 * A streaming enveloped XML-DSig signer (SPEC 6), without a DOM.
 *
 * The export writer emits everything from the root start tag to the root end tag already in
 * exclusive canonical form (see xmlWriter.ts), so the digest of `Reference URI=""` with the
 * transforms enveloped-signature + exc-c14n is the SHA-256 of exactly those bytes, minus the
 * Signature element. The exporter feeds every chunk after the prolog to `update`, writes
 * `signatureBlock()` and then the root end tag:
 *
 *   <userBlocksExport ...>\n ...users... <summary .../>\n
 *   ␣␣<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">...</Signature>\n
 *   </userBlocksExport>\n
 *
 * With the Signature element removed the text before the end tag is "\n␣␣\n", so the digest
 * input is everything fed + "␣␣\n</userBlocksExport>" (SIGNATURE_TAIL).
 *
 * The Signature element is written on one line in canonical form: no whitespace inside, no
 * self-closing tags, one default namespace declaration on Signature. Its SignedInfo,
 * canonicalized on its own (exc-c14n), gets that declaration: that is the signed octets.
 *
 * Independent check (xmlsec1 1.2.37, Debian):
 *   xmlsec1 --verify --enabled-reference-uris empty --enabled-key-data key-name \
 *     --pubkey-pem:KEYNAME signing.pub.pem FILE
 * `--enabled-reference-uris empty` and `--enabled-key-data key-name` are optional (it verifies
 * without them) but pin what we mean: only `URI=""`, and the key is chosen by KeyName among
 * the keys given on the command line, never taken from the file.
 */

export const XMLDSIG_NAMESPACE = 'http://www.w3.org/2000/09/xmldsig#';

export const ALGORITHM_URIS = {
  excC14n: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  envelopedSignature: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  sha256: 'http://www.w3.org/2001/04/xmlenc#sha256',
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'ecdsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
} as const;

/** The indent and line end around the Signature element, as the export's layout puts it. */
const SIGNATURE_INDENT = '  ';
/** What follows the fed chunks in the digested (canonical, Signature removed) document. */
export const SIGNATURE_TAIL = `${SIGNATURE_INDENT}\n${EXPORT_ROOT_END_TAG}`;

/** An XML-DSig signing key with the `KeyName` the SIS looks it up by. */
export interface XmlDsigKey {
  key: SigningKey;
  keyName: string;
}

/** The SignedInfo element; `withNamespace` gives its exc-c14n form on its own (the signed octets). */
function signedInfo(algorithm: XmlDsigAlgorithm, digestBase64: string, withNamespace: boolean): string {
  const open = withNamespace ? `<SignedInfo xmlns="${XMLDSIG_NAMESPACE}">` : '<SignedInfo>';
  return (
    open +
    `<CanonicalizationMethod Algorithm="${ALGORITHM_URIS.excC14n}"></CanonicalizationMethod>` +
    `<SignatureMethod Algorithm="${ALGORITHM_URIS[algorithm]}"></SignatureMethod>` +
    '<Reference URI="">' +
    '<Transforms>' +
    `<Transform Algorithm="${ALGORITHM_URIS.envelopedSignature}"></Transform>` +
    `<Transform Algorithm="${ALGORITHM_URIS.excC14n}"></Transform>` +
    '</Transforms>' +
    `<DigestMethod Algorithm="${ALGORITHM_URIS.sha256}"></DigestMethod>` +
    `<DigestValue>${digestBase64}</DigestValue>` +
    '</Reference>' +
    '</SignedInfo>'
  );
}

/**
 * Signs the octets of canonical SignedInfo. ECDSA values are r||s (XML-DSig 1.1, RFC 4050),
 * not the DER that OpenSSL produces by default.
 */
export function signatureValue(key: SigningKey, octets: string): string {
  const data = Buffer.from(octets, 'utf8');
  const value = key.algorithm === 'ecdsa-sha256' ? sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }) : sign('sha256', data, key.privateKey);
  return value.toString('base64');
}

export class XmlDsigSigner {
  private readonly digest: Hash = createHash('sha256');
  private started = false;
  private finished = false;

  constructor(private readonly signing: XmlDsigKey) {
    const { text, dropped } = stripIllegalXmlChars(signing.keyName);
    if (dropped > 0 || text.trim() === '') throw new TypeError('XML-DSig KeyName must be non-empty text XML can carry');
  }

  /** Feeds one chunk written to the file after the prolog (root start tag through summary). */
  update(chunk: string | Uint8Array): void {
    if (this.finished) throw new Error('XmlDsigSigner: update() after signatureBlock()');
    if (!this.started) {
      this.started = true;
      // The prolog is outside the canonical form; digesting it would silently break every signature.
      const head = typeof chunk === 'string' ? chunk.slice(0, 2) : Buffer.from(chunk.subarray(0, 2)).toString('latin1');
      if (head === '<?') throw new Error('XmlDsigSigner: feed the chunks after the XML declaration, starting with the root start tag');
    }
    if (typeof chunk === 'string') this.digest.update(chunk, 'utf8');
    else this.digest.update(chunk);
  }

  /**
   * The Signature element, indented, with its line end: write it after the summary and
   * before the root end tag. Ends the digest; call it once.
   */
  signatureBlock(): string {
    if (this.finished) throw new Error('XmlDsigSigner: signatureBlock() called twice');
    if (!this.started) throw new Error('XmlDsigSigner: signatureBlock() before any update(); feed the root start tag first');
    this.finished = true;
    const { key, keyName } = this.signing;
    this.digest.update(SIGNATURE_TAIL, 'utf8');
    const digestBase64 = this.digest.digest('base64');
    const value = signatureValue(key, signedInfo(key.algorithm, digestBase64, true));
    return (
      `${SIGNATURE_INDENT}<Signature xmlns="${XMLDSIG_NAMESPACE}">` +
      signedInfo(key.algorithm, digestBase64, false) +
      `<SignatureValue>${value}</SignatureValue>` +
      `<KeyInfo><KeyName>${escapeText(keyName)}</KeyName></KeyInfo>` +
      '</Signature>\n'
    );
  }
}

export function createXmlDsigSigner(signing: XmlDsigKey): XmlDsigSigner {
  return new XmlDsigSigner(signing);
}

/**
 * Signs a complete unsigned export as written by ExportXmlWriter (prolog, root ... summary,
 * `</userBlocksExport>\n`), through the streaming signer. For tests and tools.
 */
export function signDocument(unsignedXml: string, signing: XmlDsigKey): string {
  const close = `${EXPORT_ROOT_END_TAG}\n`;
  if (!unsignedXml.endsWith(close)) throw new Error(`signDocument: the document must end with "${EXPORT_ROOT_END_TAG}\\n"`);
  const rootStart = unsignedXml.startsWith('<?') ? unsignedXml.indexOf('?>') + 2 : 0;
  const prologEnd = unsignedXml.indexOf('<', rootStart);
  if (prologEnd < 0) throw new Error('signDocument: no root element');
  const prolog = unsignedXml.slice(0, prologEnd);
  const body = unsignedXml.slice(prologEnd, unsignedXml.length - close.length);
  const signer = new XmlDsigSigner(signing);
  // Several chunks, split anywhere (even inside a character), as a streaming writer would feed them.
  const bytes = Buffer.from(body, 'utf8');
  const step = Math.max(1, Math.ceil(bytes.length / 7));
  for (let offset = 0; offset < bytes.length; offset += step) signer.update(bytes.subarray(offset, offset + step));
  return prolog + body + signer.signatureBlock() + close;
}
