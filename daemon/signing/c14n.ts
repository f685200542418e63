import { SaxesParser, type SaxesAttributeNS, type SaxesTagNS } from 'saxes';
import { compareCodePoints } from '../codePoints';
import { escapeAttribute, escapeText } from '../xmlWriter';

/**
 * Streaming Exclusive XML Canonicalization 1.0 (https://www.w3.org/TR/xml-exc-c14n/) over
 * parser events, for verifying signatures without a DOM: the canonical form is produced
 * piece by piece into a sink (a hash, a bounded buffer) and memory only holds the open
 * elements' namespace scopes.
 *
 * What the node-set model of the spec comes down to for a whole document (or an element
 * subtree, as for SignedInfo):
 * - a namespace declaration is output on an element when the element or one of its
 *   attributes visibly uses its prefix (the default namespace counts for an unprefixed
 *   element, never for attributes) and the nearest output ancestor did not already output
 *   the same binding; `xmlns=""` appears only to undo a default namespace output above;
 * - namespace declarations sorted by prefix (the default first), then the attributes sorted
 *   by namespace URI then local name (unqualified ones first), code-point order;
 * - C14N escaping (text `& < > CR`, attributes `& < " TAB LF CR`), no self-closing tags;
 * - processing instructions and, with comments, comments are kept; outside the document
 *   element they are separated from it by a `\n`; the XML declaration, the DOCTYPE and
 *   whitespace outside the document element are dropped.
 * Attribute-value and line-end normalization is the parser's job (saxes does both).
 */

export const XML_NAMESPACE = 'http://www.w3.org/XML/1998/namespace';

/** An attribute as written, without namespace declarations. */
export interface C14nAttribute {
  /** Qualified name as written (`a`, `p:a`). */
  name: string;
  /** '' when unprefixed. */
  prefix: string;
  local: string;
  /** Namespace URI; '' for an unprefixed attribute. */
  uri: string;
  value: string;
}

/** An element start, with everything the canonical form needs from its context. */
export interface C14nElement {
  /** Qualified name as written. */
  name: string;
  /** '' when unprefixed. */
  prefix: string;
  attributes: readonly C14nAttribute[];
  /**
   * The namespace URI a prefix is bound to at this element ('' for the default namespace
   * when none is declared); undefined for an unbound prefix.
   */
  namespaceOf(prefix: string): string | undefined;
}

/** Bindings output so far, per prefix ('' = default), innermost last. */
type RenderedScope = ReadonlyMap<string, string>;

const NOTHING_RENDERED: RenderedScope = new Map([['', '']]);

export class ExclusiveCanonicalizer {
  private readonly rendered: RenderedScope[] = [];
  private seenElement = false;

  constructor(
    private readonly emit: (canonical: string) => void,
    private readonly options: { withComments: boolean } = { withComments: false },
  ) {}

  /** Number of elements open. */
  get depth(): number {
    return this.rendered.length;
  }

  startElement(element: C14nElement): void {
    const outer = this.rendered[this.rendered.length - 1] ?? NOTHING_RENDERED;
    const utilized = new Set<string>([element.prefix]);
    for (const attribute of element.attributes) {
      if (attribute.prefix !== '' && attribute.prefix !== 'xml') utilized.add(attribute.prefix);
    }
    const declarations: [prefix: string, uri: string][] = [];
    for (const prefix of utilized) {
      if (prefix === 'xml') continue; // bound by definition, never declared
      const uri = element.namespaceOf(prefix) ?? (prefix === '' ? '' : undefined);
      if (uri === undefined) throw new Error(`unbound namespace prefix "${prefix}" on <${element.name}>`);
      // `outer` always binds '' (to '' at the top), so `xmlns=""` only undoes an output default.
      if (outer.get(prefix) !== uri) declarations.push([prefix, uri]);
    }
    declarations.sort(([a], [b]) => compareCodePoints(a, b));
    let scope = outer;
    if (declarations.length > 0) {
      const copy = new Map(outer);
      for (const [prefix, uri] of declarations) copy.set(prefix, uri);
      scope = copy;
    }
    this.rendered.push(scope);

    const attributes = [...element.attributes].sort((a, b) => compareCodePoints(a.uri, b.uri) || compareCodePoints(a.local, b.local));
    let out = `<${element.name}`;
    for (const [prefix, uri] of declarations) out += prefix === '' ? ` xmlns="${escapeAttribute(uri)}"` : ` xmlns:${prefix}="${escapeAttribute(uri)}"`;
    for (const attribute of attributes) out += ` ${attribute.name}="${escapeAttribute(attribute.value)}"`;
    this.emit(`${out}>`);
    this.seenElement = true;
  }

  endElement(name: string): void {
    this.rendered.pop();
    this.emit(`</${name}>`);
  }

  /** Character data (text or CDATA content), already unescaped by the parser. */
  text(text: string): void {
    // Outside the document element only whitespace can occur; C14N drops it.
    if (this.depth > 0) this.emit(escapeText(text));
  }

  processingInstruction(target: string, body: string): void {
    this.outOfLine(body === '' ? `<?${target}?>` : `<?${target} ${body}?>`);
  }

  comment(text: string): void {
    if (this.options.withComments) this.outOfLine(`<!--${text}-->`);
  }

  /** A PI or comment: on its own line when it is before or after the document element. */
  private outOfLine(node: string): void {
    if (this.depth > 0) this.emit(node);
    else if (this.seenElement) this.emit(`\n${node}`);
    else this.emit(`${node}\n`);
  }
}

/** Namespace declarations in scope, as written (saxes trims URIs; C14N needs them verbatim). */
export class NamespaceScope {
  private readonly frames: Map<string, string>[] = [];

  /** Opens an element: records its declarations and returns the rest of its attributes. */
  enter(attributes: Record<string, SaxesAttributeNS>): C14nAttribute[] {
    const declared = new Map<string, string>();
    const rest: C14nAttribute[] = [];
    for (const attribute of Object.values(attributes)) {
      if (attribute.name === 'xmlns') declared.set('', attribute.value);
      else if (attribute.prefix === 'xmlns') declared.set(attribute.local, attribute.value);
      else rest.push({ name: attribute.name, prefix: attribute.prefix, local: attribute.local, uri: '', value: attribute.value });
    }
    this.frames.push(declared);
    for (const attribute of rest) {
      if (attribute.prefix === '') continue;
      attribute.uri = attribute.prefix === 'xml' ? XML_NAMESPACE : (this.lookup(attribute.prefix) ?? '');
    }
    return rest;
  }

  leave(): void {
    this.frames.pop();
  }

  lookup(prefix: string): string | undefined {
    if (prefix === 'xml') return XML_NAMESPACE;
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const uri = this.frames[i]!.get(prefix);
      if (uri !== undefined) return uri;
    }
    return undefined;
  }

  /** The `C14nElement` of the element just entered. */
  element(tag: SaxesTagNS, attributes: readonly C14nAttribute[]): C14nElement {
    return { name: tag.name, prefix: tag.prefix, attributes, namespaceOf: (prefix) => this.lookup(prefix) };
  }
}

/**
 * Exclusive canonical form of a whole document (UTF-8 text), through the same streaming code
 * the verifier uses. Refuses a DOCTYPE, as the verifier does. For tests and tools.
 */
export function canonicalizeDocument(xml: string, options: { withComments: boolean } = { withComments: false }): string {
  const parts: string[] = [];
  const canonicalizer = new ExclusiveCanonicalizer((part) => parts.push(part), options);
  const scope = new NamespaceScope();
  const parser = new SaxesParser({ xmlns: true, position: true });
  parser.on('doctype', () => {
    throw new Error('a DOCTYPE is not allowed');
  });
  parser.on('opentag', (tag) => canonicalizer.startElement(scope.element(tag, scope.enter(tag.attributes))));
  parser.on('closetag', (tag) => {
    canonicalizer.endElement(tag.name);
    scope.leave();
  });
  parser.on('text', (text) => canonicalizer.text(text));
  parser.on('cdata', (text) => canonicalizer.text(text));
  parser.on('processinginstruction', (pi) => canonicalizer.processingInstruction(pi.target, pi.body));
  parser.on('comment', (text) => canonicalizer.comment(text));
  parser.write(xml).close();
  return parts.join('');
}
