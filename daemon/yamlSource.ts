import fs from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type YAMLError } from 'yaml';
import { SbeError, type ErrorCode, type SourceIssue } from './errors';

export type InstancePath = readonly (string | number)[];

/** A parsed YAML file that can tell where each value came from. */
export class YamlSource {
  readonly data: unknown;

  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {
    this.data = doc.toJS({ maxAliasCount: 100 });
  }

  /**
   * Where the value at `path` is written (or, with `key: true`, the key that names it). Falls
   * back to the nearest enclosing node that exists, so a missing property points at its parent.
   */
  positionOf(path: InstancePath, options: { key?: boolean } = {}): { line: number; column: number } {
    let node: unknown = this.doc.contents;
    let keyNode: unknown;
    for (const segment of path) {
      let next: unknown;
      if (isMap(node)) {
        const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
        if (pair) {
          keyNode = pair.key;
          next = pair.value;
        }
      } else if (isSeq(node) && typeof segment === 'number') {
        next = node.items[segment];
        keyNode = next;
      }
      if (next === undefined || next === null) {
        if (keyNode !== undefined && segment === path[path.length - 1] && options.key) node = keyNode;
        break;
      }
      node = next;
    }
    if (options.key && keyNode !== undefined && path.length > 0) node = keyNode;
    // `key:` with nothing after it: the empty value sits at the line's end; point at the key.
    if (isScalar(node) && node.value === null && node.source === '' && keyNode !== undefined) node = keyNode;
    const offset = (node as Node | undefined)?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  issueAt(path: InstancePath, message: string, options: { key?: boolean } = {}): SourceIssue {
    const { line, column } = this.positionOf(path, options);
    return { file: this.file, line, column, path: toPointer(path), message };
  }
}

export function toPointer(path: InstancePath): string {
  return path.length === 0 ? '/' : path.map((segment) => `/${String(segment).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/**
 * Where a syntax error is best shown. An unclosed quote is reported by the parser at the end
 * of the text it swallowed; the person needs the opening quote.
 */
function problemOffset(doc: Document.Parsed, problem: YAMLError): number {
  const offset = problem.pos[0];
  if (problem.code !== 'MISSING_CHAR' || !/quote/.test(problem.message)) return offset;
  let opening = offset;
  visit(doc, {
    Scalar(_key, node) {
      const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
      if (quoted && node.range && node.range[0] < offset && offset <= node.range[2]) {
        opening = node.range[0];
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return opening;
}

function syntaxMessage(problem: YAMLError): string {
  const firstLine = problem.message.split('\n')[0] ?? problem.message;
  if (problem.code === 'MISSING_CHAR' && /quote/.test(problem.message)) return `${firstLine} (the quoted value that starts here is never closed)`;
  return withAliasHint(firstLine);
}

/** An unquoted cron schedule (`schedule: * * * * *`) reads as YAML aliases. */
function withAliasHint(message: string): string {
  return /^(Unresolved alias|Unexpected alias|Alias cannot be an empty string)/.test(message) ? `${message} (a value that starts with "*", like a cron schedule, must be quoted: "* * * * *")` : message;
}

/** Parses YAML text; syntax errors become an SbeError of `code` with their line and column. */
export function parseYaml(file: string, text: string, code: ErrorCode): YamlSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    const issues: SourceIssue[] = [];
    for (const problem of doc.errors) {
      const { line, col } = lines.linePos(problemOffset(doc, problem));
      // One mistake often trips several errors on its line; the first one says it best.
      if (issues.some((issue) => issue.line === line)) continue;
      issues.push({ file, line, column: col, message: `YAML syntax error: ${syntaxMessage(problem)}` });
    }
    throw new SbeError(code, `${file} is not valid YAML`, { issues });
  }
  try {
    return new YamlSource(file, doc, lines);
  } catch (error) {
    // Aliases are resolved only here: an unknown anchor, or an alias bomb.
    const message = (error as Error).message;
    const name = /^Unresolved alias.*: (.*)$/.exec(message)?.[1];
    let offset = 0;
    visit(doc, {
      Alias(_key, node) {
        if (name !== undefined && node.source !== name) return undefined;
        offset = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    const { line, col } = lines.linePos(offset);
    throw new SbeError(code, `${file} is not valid YAML`, { cause: error, issues: [{ file, line, column: col, message: `YAML error: ${withAliasHint(message)}` }] });
  }
}

export async function readYamlFile(file: string, code: ErrorCode): Promise<YamlSource> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new SbeError(code, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
  }
  return parseYaml(file, text, code);
}
