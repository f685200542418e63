import { createHash, timingSafeEqual, verify as verifySignature, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { SbeError } from '../errors';
import { EXPORT_NAMESPACE, EXPORT_ROOT_ELEMENT } from '../xmlWriter';
import { ExclusiveCanonicalizer, NamespaceScope, type C14nAttribute } from './c14n';
import { parsePublicKey, xmlDsigAlgorithmOf, type XmlDsigAlgorithm } from './keys';
import { ALGORITHM_URIS, XMLDSIG_NAMESPACE } from './xmldsig';

/**
 * Streaming verification of an export's enveloped XML-DSig signature (SPEC 6), without a
 * DOM: the file is parsed once with saxes; everything but the Signature element goes through
 * the streaming exc-c14n into a SHA-256; the Signature element (small, capped) is kept as a
 * little tree and its SignedInfo canonicalized on the way.
 *
 * Only the profile of signature the signer writes is accepted, so nothing can be smuggled
 * past the check (signature wrapping): exactly one Signature, the last element child of the
 * root; exactly one Reference, URI="" (the whole document); exactly the transforms
 * enveloped-signature then exc-c14n; exc-c14n for SignedInfo; SHA-256; RSA-SHA256 or
 * ECDSA-SHA256. The key is the one given by the caller; KeyValue, X509Data or any other
 * key material in the file is never used (it is ignored: only KeyName is read, and only to
 * report it). A DOCTYPE is refused outright, so no entity can expand.
 */

export interface VerifyResult {
  valid: true;
  /** `KeyInfo/KeyName` of the signature, when present (informational: not used to pick the key). */
  keyName: string | undefined;
}

/** Bounds on the Signature element: it is a few hundred bytes; these stop a hostile one. */
const SIGNATURE_MAX_NODES = 64;
const SIGNATURE_MAX_TEXT = 64 * 1024;

/** Attributes allowed on each Signature descendant (XML-DSig allows `Id`s; we read only the ones listed). */
const ALLOWED_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  Signature: ['Id'],
  SignedInfo: ['Id'],
  CanonicalizationMethod: ['Algorithm'],
  SignatureMethod: ['Algorithm'],
  Reference: ['URI', 'Id', 'Type'],
  Transforms: [],
  Transform: ['Algorithm'],
  DigestMethod: ['Algorithm'],
  DigestValue: [],
  SignatureValue: ['Id'],
  KeyInfo: ['Id'],
  KeyName: [],
};

interface SignatureNode {
  uri: string;
  local: string;
  attributes: Map<string, string>;
  /** Attribute names in some namespace (never allowed). */
  qualifiedAttributes: string[];
  children: SignatureNode[];
  text: string;
}

/** Thrown inside the parser callbacks; turned into SIGNATURE_INVALID with the file name. */
class Rejection extends Error {}

function reject(reason: string): never {
  throw new Rejection(reason);
}

function describeNode(node: SignatureNode): string {
  return node.uri === XMLDSIG_NAMESPACE ? node.local : `{${node.uri}}${node.local}`;
}

/** The children of `node`, checked to be exactly the XML-DSig elements `names` (a `?` suffix: optional). */
function childrenOf(node: SignatureNode, names: readonly string[], path: string): Map<string, SignatureNode> {
  const found = new Map<string, SignatureNode>();
  let index = 0;
  for (const pattern of names) {
    const optional = pattern.endsWith('?');
    const name = optional ? pattern.slice(0, -1) : pattern;
    const child = node.children[index];
    if (child && child.uri === XMLDSIG_NAMESPACE && child.local === name) {
      found.set(name, child);
      index++;
    } else if (!optional) {
      reject(`${path} lacks ${name}${child ? ` (found ${describeNode(child)})` : ''}`);
    }
  }
  const extra = node.children[index];
  if (extra) reject(`${path} has an unexpected ${describeNode(extra)} element; only ${names.map((n) => n.replace('?', '')).join(', ')} are accepted`);
  if (node.text.trim() !== '' && names.length > 0) reject(`${path} has unexpected text`);
  return found;
}

function checkAttributes(node: SignatureNode, path: string): void {
  const allowed = ALLOWED_ATTRIBUTES[node.local] ?? [];
  for (const name of node.attributes.keys()) if (!allowed.includes(name)) reject(`${path} has an unexpected attribute ${name}`);
  if (node.qualifiedAttributes.length > 0) reject(`${path} has an unexpected attribute ${node.qualifiedAttributes[0]}`);
  for (const child of node.children) if (child.uri === XMLDSIG_NAMESPACE) checkAttributes(child, `${path}/${child.local}`);
}

function algorithmOf(node: SignatureNode, expected: readonly string[], path: string): string {
  const algorithm = node.attributes.get('Algorithm');
  if (algorithm === undefined) reject(`${path} has no Algorithm`);
  if (!expected.includes(algorithm)) reject(`${path} Algorithm "${algorithm}" is not accepted; expected ${expected.map((a) => `"${a}"`).join(' or ')}`);
  if (node.children.length > 0) reject(`${path} must be empty (parameters such as InclusiveNamespaces or HMACOutputLength are not accepted)`);
  return algorithm;
}

function base64Of(node: SignatureNode, path: string): Buffer {
  const text = node.text.replace(/[ \t\r\n]+/g, '');
  if (node.children.length > 0 || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text) || text === '') reject(`${path} is not base64`);
  return Buffer.from(text, 'base64');
}

interface CheckedSignature {
  algorithm: XmlDsigAlgorithm;
  digest: Buffer;
  value: Buffer;
  keyName: string | undefined;
}

/** Checks the captured Signature element against the one profile of signature we accept. */
function checkSignatureElement(signature: SignatureNode): CheckedSignature {
  checkAttributes(signature, 'Signature');
  const parts = childrenOf(signature, ['SignedInfo', 'SignatureValue', 'KeyInfo?'], 'Signature');
  const signedInfo = parts.get('SignedInfo')!;
  const info = childrenOf(signedInfo, ['CanonicalizationMethod', 'SignatureMethod', 'Reference'], 'SignedInfo');
  algorithmOf(info.get('CanonicalizationMethod')!, [ALGORITHM_URIS.excC14n], 'SignedInfo/CanonicalizationMethod');
  const signatureMethod = algorithmOf(info.get('SignatureMethod')!, [ALGORITHM_URIS['rsa-sha256'], ALGORITHM_URIS['ecdsa-sha256']], 'SignedInfo/SignatureMethod');
  const algorithm: XmlDsigAlgorithm = signatureMethod === ALGORITHM_URIS['ecdsa-sha256'] ? 'ecdsa-sha256' : 'rsa-sha256';

  const reference = info.get('Reference')!;
  const uri = reference.attributes.get('URI');
  if (uri === undefined) reject('the Reference has no URI; only URI="" (the whole document) is accepted');
  if (uri !== '') reject(`the Reference points at URI="${uri}"; only URI="" (the whole document) is accepted`);
  const ref = childrenOf(reference, ['Transforms', 'DigestMethod', 'DigestValue'], 'Reference');
  const transforms = ref.get('Transforms')!;
  const expectedTransforms = [ALGORITHM_URIS.envelopedSignature, ALGORITHM_URIS.excC14n];
  if (transforms.children.length !== expectedTransforms.length || transforms.text.trim() !== '') {
    reject(`the Reference must have exactly the transforms enveloped-signature then exc-c14n (found ${transforms.children.length} transform(s))`);
  }
  transforms.children.forEach((transform, index) => {
    if (transform.uri !== XMLDSIG_NAMESPACE || transform.local !== 'Transform') reject(`Transforms has an unexpected ${describeNode(transform)} element`);
    algorithmOf(transform, [expectedTransforms[index]!], `Reference/Transforms/Transform[${index + 1}]`);
  });
  algorithmOf(ref.get('DigestMethod')!, [ALGORITHM_URIS.sha256], 'Reference/DigestMethod');
  const digest = base64Of(ref.get('DigestValue')!, 'Reference/DigestValue');
  if (digest.length !== 32) reject(`Reference/DigestValue has ${digest.length} bytes; a SHA-256 digest has 32`);
  const value = base64Of(parts.get('SignatureValue')!, 'SignatureValue');

  // KeyInfo may also carry KeyValue or X509Data from other signers: never used, so ignored.
  let keyName: string | undefined;
  const keyInfo = parts.get('KeyInfo');
  if (keyInfo) {
    const names = keyInfo.children.filter((child) => child.uri === XMLDSIG_NAMESPACE && child.local === 'KeyName');
    if (names.length > 1) reject('KeyInfo has more than one KeyName');
    keyName = names[0]?.text;
  }
  return { algorithm, digest, value, keyName };
}

function checkKeyFits(key: KeyObject, algorithm: XmlDsigAlgorithm, keyAlgorithm: XmlDsigAlgorithm): void {
  if (algorithm !== keyAlgorithm) {
    reject(`the signature is ${algorithm.toUpperCase()} but the given public key is ${key.asymmetricKeyType === 'ec' ? 'an EC P-256' : 'an RSA'} key; give the key the file was signed with`);
  }
}

/**
 * Collects the Signature element as a small tree, and the canonical form of its SignedInfo.
 * Bounded: a Signature larger than a few kilobytes is not one of ours.
 */
class SignatureCapture {
  readonly root: SignatureNode;
  private readonly open: SignatureNode[] = [];
  private nodes = 1;
  private textLength = 0;
  private readonly signedInfoParts: string[] = [];
  private signedInfoCanonicalizer: ExclusiveCanonicalizer | undefined;
  private signedInfoCount = 0;

  constructor(tag: SaxesTagNS) {
    this.root = this.node(tag);
    this.open.push(this.root);
  }

  get done(): boolean {
    return this.open.length === 0;
  }

  get signedInfo(): string {
    return this.signedInfoParts.join('');
  }

  private node(tag: SaxesTagNS): SignatureNode {
    const attributes = new Map<string, string>();
    const qualifiedAttributes: string[] = [];
    for (const attribute of Object.values(tag.attributes)) {
      if (attribute.name === 'xmlns' || attribute.prefix === 'xmlns') continue;
      if (attribute.prefix === '') attributes.set(attribute.local, attribute.value);
      else qualifiedAttributes.push(attribute.name);
    }
    return { uri: tag.uri, local: tag.local, attributes, qualifiedAttributes, children: [], text: '' };
  }

  startElement(tag: SaxesTagNS, scope: NamespaceScope, attributes: readonly C14nAttribute[]): void {
    if (++this.nodes > SIGNATURE_MAX_NODES) reject('the Signature element is too large to be one written by sis-block-export');
    const parent = this.open[this.open.length - 1]!;
    const node = this.node(tag);
    parent.children.push(node);
    this.open.push(node);
    // SignedInfo as a child of Signature starts its own canonical form (an apex of its own).
    if (this.open.length === 2 && tag.uri === XMLDSIG_NAMESPACE && tag.local === 'SignedInfo') {
      this.signedInfoCount++;
      this.signedInfoCanonicalizer = new ExclusiveCanonicalizer((part) => this.addSignedInfo(part));
    }
    this.signedInfoCanonicalizer?.startElement(scope.element(tag, attributes));
  }

  endElement(name: string): void {
    this.open.pop();
    const canonicalizer = this.signedInfoCanonicalizer;
    if (canonicalizer) {
      canonicalizer.endElement(name);
      if (canonicalizer.depth === 0) this.signedInfoCanonicalizer = undefined;
    }
  }

  text(text: string): void {
    this.textLength += text.length;
    if (this.textLength > SIGNATURE_MAX_TEXT) reject('the Signature element is too large to be one written by sis-block-export');
    this.open[this.open.length - 1]!.text += text;
    this.signedInfoCanonicalizer?.text(text);
  }

  processingInstruction(target: string, body: string): void {
    this.signedInfoCanonicalizer?.processingInstruction(target, body);
  }

  private addSignedInfo(part: string): void {
    this.textLength += part.length;
    if (this.textLength > SIGNATURE_MAX_TEXT) reject('the Signature element is too large to be one written by sis-block-export');
    this.signedInfoParts.push(part);
  }

  /** More than one SignedInfo would leave it open which one was canonicalized. */
  get hasOneSignedInfo(): boolean {
    return this.signedInfoCount === 1;
  }
}

function isSignatureTag(tag: SaxesTagNS): boolean {
  return tag.uri === XMLDSIG_NAMESPACE && tag.local === 'Signature';
}

/** Streams `file` through the checks; returns the parts that the cryptography needs. */
async function scanExport(file: string): Promise<{ documentDigest: Buffer; capture: SignatureCapture }> {
  const hash = createHash('sha256');
  // The canonical form comes in tiny pieces; hashing them in batches is several times faster.
  let pending = '';
  const document = new ExclusiveCanonicalizer((part) => {
    pending += part;
    if (pending.length >= 64 * 1024) {
      hash.update(pending, 'utf8');
      pending = '';
    }
  });
  const scope = new NamespaceScope();
  const parser = new SaxesParser({ xmlns: true, fileName: file });
  let depth = 0;
  let capture: SignatureCapture | undefined;
  let signatureDepth = 0;
  let sawRoot = false;

  parser.on('xmldecl', (declaration) => {
    if (declaration.encoding !== undefined && !/^utf-?8$/i.test(declaration.encoding)) reject(`the file declares encoding "${declaration.encoding}"; exports are UTF-8`);
  });
  parser.on('doctype', () => reject('the file has a DOCTYPE; exports never do, and entity declarations are refused'));
  parser.on('opentag', (tag) => {
    const attributes = scope.enter(tag.attributes);
    depth++;
    if (depth === 1) {
      sawRoot = true;
      if (tag.uri !== EXPORT_NAMESPACE || tag.local !== EXPORT_ROOT_ELEMENT) {
        reject(`the root element is {${tag.uri}}${tag.local}, not a sis-block-export export ({${EXPORT_NAMESPACE}}${EXPORT_ROOT_ELEMENT})`);
      }
    }
    if (signatureDepth > 0) {
      if (isSignatureTag(tag)) reject('a Signature element is nested inside the Signature');
      capture!.startElement(tag, scope, attributes);
      return;
    }
    if (isSignatureTag(tag)) {
      if (capture) reject('the file has more than one Signature element');
      if (depth !== 2) reject('a Signature element is not a child of the root; only one enveloped Signature, the last child of the root, is accepted');
      capture = new SignatureCapture(tag);
      signatureDepth = depth;
      return;
    }
    if (capture) reject(`the Signature is not the last element of the root: <${tag.name}> follows it`);
    document.startElement(scope.element(tag, attributes));
  });
  parser.on('closetag', (tag) => {
    if (signatureDepth > 0) {
      if (depth === signatureDepth) signatureDepth = 0;
      else capture!.endElement(tag.name);
    } else {
      document.endElement(tag.name);
    }
    scope.leave();
    depth--;
  });
  const onText = (text: string): void => {
    if (signatureDepth > 0) capture!.text(text);
    else document.text(text);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('processinginstruction', (pi) => {
    if (signatureDepth > 0) capture!.processingInstruction(pi.target, pi.body);
    else document.processingInstruction(pi.target, pi.body);
  });
  // Reference URI="" selects the document without comments, and SignedInfo is exc-c14n without comments.

  // A fatal decoder: a byte that is not UTF-8 must fail, not become U+FFFD.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  const stream = fs.createReadStream(file, { highWaterMark: 256 * 1024 });
  try {
    for await (const chunk of stream) {
      parser.write(decoder.decode(chunk as Buffer, { stream: true }));
    }
    parser.write(decoder.decode());
    parser.close();
  } catch (error) {
    stream.destroy();
    if (error instanceof Rejection || error instanceof SbeError) throw error;
    const { code, syscall } = error as NodeJS.ErrnoException;
    if (code === 'ERR_ENCODING_INVALID_ENCODED_DATA') reject('the file is not valid UTF-8');
    if (syscall !== undefined) {
      const reason = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory, not an export file' : `cannot be read (${code})`;
      throw new SbeError('SIGNATURE_INVALID', `${file} ${reason}`, { cause: error });
    }
    reject(`the file is not well-formed XML: ${(error as Error).message}`);
  }
  hash.update(pending, 'utf8');
  if (!sawRoot) reject('the file has no root element');
  if (!capture) reject('the file has no Signature element: it is not signed');
  if (!capture.hasOneSignedInfo) reject('the Signature must have exactly one SignedInfo');
  return { documentDigest: hash.digest(), capture };
}

/**
 * Verifies the enveloped XML-DSig signature of an export with the given public key (a
 * KeyObject, or PEM text of a public key or certificate). Streams the file: memory does not
 * grow with its size. Returns `{ valid: true, keyName }` or throws SIGNATURE_INVALID with
 * the reason (KEY_INVALID when the public key itself is unusable).
 */
export async function verifyExport(file: string, publicKey: KeyObject | string): Promise<VerifyResult> {
  const { key, algorithm: keyAlgorithm } = typeof publicKey === 'string' ? parsePublicKey(publicKey, 'given as PEM text') : { key: publicKey, algorithm: keyAlgorithmOf(publicKey) };
  try {
    const { documentDigest, capture } = await scanExport(file);
    const signature = checkSignatureElement(capture.root);
    if (!timingSafeEqual(documentDigest, signature.digest)) {
      reject('the document digest does not match: the file was changed after it was signed');
    }
    checkKeyFits(key, signature.algorithm, keyAlgorithm);
    const octets = Buffer.from(capture.signedInfo, 'utf8');
    const ok =
      signature.algorithm === 'ecdsa-sha256'
        ? signature.value.length === 64 && verifySignature('sha256', octets, { key, dsaEncoding: 'ieee-p1363' }, signature.value)
        : verifySignature('sha256', octets, key, signature.value);
    if (!ok) reject('the signature value does not verify with the given public key (wrong key, or SignedInfo was changed)');
    return { valid: true, keyName: signature.keyName };
  } catch (error) {
    if (error instanceof Rejection) throw new SbeError('SIGNATURE_INVALID', `${file}: ${error.message}`);
    throw error;
  }
}

function keyAlgorithmOf(key: KeyObject): XmlDsigAlgorithm {
  if (key.type !== 'public') throw new SbeError('KEY_INVALID', 'verifying needs a public key, not a private or secret one');
  return xmlDsigAlgorithmOf(key, '(given as a key object)', 'public key');
}
