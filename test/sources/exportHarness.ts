/**
 * Shared by the source adapter tests: runs `sis-block-export export` through the CLI against
 * a library system's database and reads back the delivered file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { runCli, type CliResult } from '../helpers/cli';
import { xmllintValidate } from '../helpers/xmllint';

export const NOW = '2026-12-04T02:00:00Z';

export interface ExpectedBlock {
  blockType: string;
  description?: string;
  createdDate: string;
  expiryDate?: string;
  note?: string;
}

export interface ExpectedUser {
  userId: string;
  primaryId: string;
  firstName?: string;
  lastName?: string;
  userGroup?: string;
  accountType: 'INTERNAL' | 'EXTERNAL';
  activeBalance: string;
  blocks: ExpectedBlock[];
}

const escapeText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One `<user>` element as the export writes it (SPEC 5), from `<user>` to `</user>`. */
export function userXml(user: ExpectedUser): string {
  const field = (name: string, value: string | undefined, indent: string) => (value === undefined ? [] : [`${indent}<${name}>${escapeText(value)}</${name}>`]);
  const lines = [
    '<user>',
    ...field('userId', user.userId, '    '),
    ...field('primaryId', user.primaryId, '    '),
    ...field('firstName', user.firstName, '    '),
    ...field('lastName', user.lastName, '    '),
    ...field('userGroup', user.userGroup, '    '),
    ...field('accountType', user.accountType, '    '),
    ...field('activeBalance', user.activeBalance, '    '),
  ];
  if (user.blocks.length === 0) lines.push('    <blocks></blocks>');
  else {
    lines.push('    <blocks>');
    for (const block of user.blocks) {
      lines.push(
        '      <block>',
        ...field('blockType', block.blockType, '        '),
        ...field('description', block.description, '        '),
        ...field('createdDate', block.createdDate, '        '),
        ...field('expiryDate', block.expiryDate, '        '),
        ...field('note', block.note, '        '),
        '      </block>',
      );
    }
    lines.push('    </blocks>');
  }
  lines.push('  </user>');
  return lines.join('\n');
}

/** The text of every `<user>` element of an export, in order. */
export function userElements(xml: string): string[] {
  return [...xml.matchAll(/<user>[\s\S]*?<\/user>/g)].map((match) => match[0]);
}

/** The text of every element `name`, in order. */
export function elements(xml: string, name: string): string[] {
  return [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((match) => match[1]!);
}

export function summaryOf(xml: string): Record<string, string> {
  const tag = /<summary ([^>]*)>/.exec(xml)?.[1] ?? '';
  return Object.fromEntries([...tag.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1]!, match[2]!]));
}

export interface SourceExport {
  result: CliResult;
  xml: string;
}

/** A temp directory with a state dir and an inbox; each `run` writes a profile and exports once. */
export class ExportHarness {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-source-'));
  readonly inbox = path.join(this.dir, 'inbox');
  readonly stateDir = path.join(this.dir, 'state');
  private runs = 0;

  constructor(private readonly source: string, private readonly database: string) {
    fs.mkdirSync(this.inbox);
  }

  writeProfile(profile: Record<string, unknown>): string {
    this.runs++;
    const document = {
      id: `${this.source}-${this.runs}`,
      source: this.source,
      database: this.database,
      currency: 'USD',
      delivery: { transport: 'local', directory: 'inbox' },
      ...profile,
    };
    const file = path.join(this.dir, `${document.id}.yaml`);
    fs.writeFileSync(file, stringify(document));
    return file;
  }

  /** Exports with `rules` (and any other profile keys); expects success and an XSD-valid file. */
  async run(profile: Record<string, unknown>): Promise<SourceExport> {
    for (const name of fs.readdirSync(this.inbox)) fs.rmSync(path.join(this.inbox, name));
    const file = this.writeProfile(profile);
    const result = await runCli(['export', '--profile', file, '--now', NOW], { SIS_BLOCK_EXPORT_STATE_DIR: this.stateDir });
    expect(result.code, `${result.stdout}\n${result.stderr}`).to.equal(0);
    const delivered = fs.readdirSync(this.inbox);
    expect(delivered).to.have.length(1);
    const exportFile = path.join(this.inbox, delivered[0]!);
    const validation = await xmllintValidate(exportFile);
    expect(validation.ok, validation.output).to.equal(true);
    return { result, xml: fs.readFileSync(exportFile, 'utf8') };
  }

  /** Exports expecting failure; returns the CLI result. */
  async fail(profile: Record<string, unknown>): Promise<CliResult> {
    const file = this.writeProfile(profile);
    return runCli(['export', '--profile', file, '--now', NOW], { SIS_BLOCK_EXPORT_STATE_DIR: this.stateDir });
  }

  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `base` (a postgres:// or mysql:// URL) with another database name. */
export { withDatabase } from '../helpers/dialectDb';

/** The statements of a fixture .sql file: separated by lines holding only ";". */
export function fixtureStatements(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split(/^;$/m).map((statement) => statement.replace(/^--.*$/gm, '').trim()).filter(Boolean);
}
