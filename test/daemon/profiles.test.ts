import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SbeError, type SourceIssue } from '../../daemon/errors';
import { packageRoot } from '../../daemon/paths';
import { loadProfileFile, parseProfile, type Profile } from '../../daemon/profiles';
import { DEFAULT_FILE_NAME } from '../../daemon/profileSchema';
import { builtinRegistry } from '../../daemon/registry';
import { runCli } from '../helpers/cli';

const FILE = '/srv/sis-block-export/profiles.d/test.yaml';
const FIXTURES = path.join(packageRoot, 'test', 'fixtures', 'profiles');
const EXAMPLES = path.join(packageRoot, 'profiles', 'examples');
const NOW = () => new Date('2026-12-04T02:00:00Z');
const BUILTIN_RULES = 'block-types, exclude-internal, fine-age, match-id, threshold, user-groups';
const FILE_NAME_RULE = 'must be a plain file name: letters, digits, ".", "_", "-" and placeholders {profile}, {runId}, {date}; no "/", no "..", not starting with "."';

/** The lines of a minimal valid profile; tests append to it or replace lines. */
const HEAD = ['id: test', 'currency: USD', 'delivery:', '  transport: local', '  directory: /srv/inbox'];

function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** 1-based line and column of the `occurrence`-th `needle` in `text`. */
function at(text: string, needle: string, occurrence = 1): { line: number; column: number } {
  let index = -1;
  for (let seen = 0; seen < occurrence; seen++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`test bug: ${JSON.stringify(needle)} (#${occurrence}) is not in the profile text`);
  }
  const before = text.slice(0, index);
  return { line: before.split('\n').length, column: index - before.lastIndexOf('\n') };
}

function parse(text: string, file = FILE): Profile {
  return parseProfile(file, text, builtinRegistry);
}

/** The issues of a profile that must be refused as PROFILE_INVALID (exit 2). */
function issuesOf(text: string, file = FILE): SourceIssue[] {
  let caught: unknown;
  try {
    parse(text, file);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'the profile must be refused').to.be.instanceOf(SbeError);
  const error = caught as SbeError;
  expect(error.code).to.equal('PROFILE_INVALID');
  expect(error.exitCode).to.equal(2);
  expect(error.message).to.contain(file);
  expect(error.issues).to.not.be.empty;
  return [...error.issues];
}

function onlyIssue(text: string): SourceIssue {
  const issues = issuesOf(text);
  expect(issues, JSON.stringify(issues, null, 2)).to.have.length(1);
  return issues[0]!;
}

function expectIssue(issue: SourceIssue, where: { line: number; column: number }, message: string | RegExp, pointer?: string): void {
  expect(issue.file).to.equal(FILE);
  expect({ line: issue.line, column: issue.column }, issue.message).to.deep.equal(where);
  if (typeof message === 'string') expect(issue.message).to.equal(message);
  else expect(issue.message).to.match(message);
  if (pointer !== undefined) expect(issue.path).to.equal(pointer);
}

function ruleSummary(profile: Profile): [string, Record<string, unknown>, number][] {
  return profile.rules.map(({ rule, options, index }) => [rule.id, options, index]);
}

describe('daemon/profiles', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-profiles-'));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('example profiles', () => {
    it('every profile in profiles/examples validates with the built-in registry', async () => {
      const files = fs.readdirSync(EXAMPLES).filter((name) => /\.ya?ml$/.test(name)).sort();
      expect(files).to.include.members(['demo-local.yaml', 'main-campus.yaml', 'staff-all.yaml']);
      const ids = new Set<string>();
      for (const name of files) {
        const profile = await loadProfileFile(path.join(EXAMPLES, name), builtinRegistry);
        expect(profile.file).to.equal(path.join(EXAMPLES, name));
        expect(ids.has(profile.id), `duplicate example id ${profile.id}`).to.equal(false);
        ids.add(profile.id);
      }
      const demo = await loadProfileFile(path.join(EXAMPLES, 'demo-local.yaml'), builtinRegistry);
      expect(demo.delivery.options.directory).to.equal(path.join(packageRoot, 'demo', 'inbox'));
      const main = await loadProfileFile(path.join(EXAMPLES, 'main-campus.yaml'), builtinRegistry);
      expect(main.timezone).to.equal('America/New_York');
      expect(ruleSummary(main).map(([id]) => id)).to.deep.equal(['match-id', 'user-groups', 'fine-age', 'threshold']);
    });
  });

  describe('unknown rule', () => {
    it('points at the rule value and lists the known rule ids', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: fine-age', '  - rule: foo', '    with: { days: 3 }');
      const issue = onlyIssue(text);
      expectIssue(issue, at(text, 'foo'), `unknown rule "foo"; known rules: ${BUILTIN_RULES}`, '/rules/1/rule');
      expect(issue.message).to.contain('match-id').and.to.contain('threshold');
    });

    it('points at the transport value and lists the known transports', () => {
      const text = yaml('id: test', 'currency: USD', 'delivery:', '  transport: ftp', '  directory: /srv/inbox');
      expectIssue(onlyIssue(text), at(text, 'ftp'), 'unknown transport "ftp"; known transports: local, sftp', '/delivery/transport');
    });
  });

  describe('rule options of the wrong type or range', () => {
    const cases: { name: string; rule: string; withText: string; value: string; message: string | RegExp; pointer: string }[] = [
      { name: 'fine-age days "thirty"', rule: 'fine-age', withText: '{ days: "thirty" }', value: '"thirty"', message: '"days" must be of type integer', pointer: '/rules/0/with/days' },
      { name: 'fine-age days -1', rule: 'fine-age', withText: '{ days: -1 }', value: '-1', message: '"days" must be >= 0', pointer: '/rules/0/with/days' },
      { name: 'fine-age days 1.5', rule: 'fine-age', withText: '{ days: 1.5 }', value: '1.5', message: '"days" must be of type integer', pointer: '/rules/0/with/days' },
      { name: 'fine-age days 36501', rule: 'fine-age', withText: '{ days: 36501 }', value: '36501', message: '"days" must be <= 36500', pointer: '/rules/0/with/days' },
      { name: 'user-groups include: UG (not a list)', rule: 'user-groups', withText: '{ include: UG }', value: 'UG', message: '"include" must be of type array', pointer: '/rules/0/with/include' },
      { name: 'user-groups include: []', rule: 'user-groups', withText: '{ include: [] }', value: '[]', message: /^"include" must NOT have fewer than 1 item/, pointer: '/rules/0/with/include' },
      { name: 'threshold amount "5,00"', rule: 'threshold', withText: '{ amount: "5,00" }', value: '"5,00"', message: /^"amount" must be a decimal amount in major units with a "\." for the decimals, like "5\.00"$/, pointer: '/rules/0/with/amount' },
      { name: 'threshold amount -1', rule: 'threshold', withText: '{ amount: -1 }', value: '-1', message: '"amount" must be >= 0', pointer: '/rules/0/with/amount' },
      // The schema cannot know the currency: the rule's own check refuses it, at `with`.
      { name: 'threshold amount "5.005" in USD', rule: 'threshold', withText: '{ amount: "5.005" }', value: '{ amount', message: '"5.005" has more decimals than USD allows (2)', pointer: '/rules/0/with' },
      { name: 'match-id missing: maybe', rule: 'match-id', withText: '{ missing: maybe }', value: 'maybe', message: '"missing" must be one of: "skip", "primary"', pointer: '/rules/0/with/missing' },
      { name: 'match-id idType: ""', rule: 'match-id', withText: '{ idType: "" }', value: '""', message: /^"idType" must NOT have fewer than 1 character/, pointer: '/rules/0/with/idType' },
    ];
    for (const testCase of cases) {
      it(`${testCase.name}: points at the value`, () => {
        const text = yaml(...HEAD, 'rules:', `  - rule: ${testCase.rule}`, `    with: ${testCase.withText}`);
        expectIssue(onlyIssue(text), at(text, testCase.value), testCase.message, testCase.pointer);
      });
    }

    it('"5.005" is fine for a currency with three minor digits (KWD)', () => {
      const text = yaml('id: test', 'currency: KWD', ...HEAD.slice(2), 'rules:', '  - rule: threshold', '    with: { amount: "5.005" }');
      expect(parse(text).rules.find(({ rule }) => rule.id === 'threshold')?.options).to.deep.equal({ amount: '5.005' });
    });

    it('a rule whose options are required, listed without `with`, points at the list item', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: user-groups');
      expectIssue(onlyIssue(text), at(text, 'rule: user-groups'), /^"with" must /, '/rules/0/with');
    });

    it('`with:` left empty points at the `with` key, not the end of its line', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: fine-age', '    with:');
      expectIssue(onlyIssue(text), at(text, 'with:'), '"with" must be of type object', '/rules/0/with');
    });
  });

  describe('unknown keys', () => {
    it('at the top level: names the key, lists the allowed keys, points at the key', () => {
      const text = yaml('id: test', 'schedul: "0 2 * * *"', ...HEAD.slice(1));
      expectIssue(
        onlyIssue(text),
        at(text, 'schedul'),
        'unknown key "schedul"; allowed keys here: id, description, schedule, timezone, database, source, currency, rules, output, delivery',
        '/',
      );
    });

    it('inside the `with` of a rule', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: fine-age', '    with:', '      days: 30', '      dayz: 3');
      expectIssue(onlyIssue(text), at(text, 'dayz'), 'unknown key "dayz"; allowed keys here: days', '/rules/0/with');
    });

    it('inside the `with` of a rule that takes no options', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: exclude-internal', '    with: { really: true }');
      expectIssue(onlyIssue(text), at(text, 'really'), 'unknown key "really"; no keys are allowed here', '/rules/0/with');
    });

    it('beside `rule` and `with` in a rules item', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: fine-age', '    wiht: { days: 3 }');
      expectIssue(onlyIssue(text), at(text, 'wiht'), 'unknown key "wiht"; allowed keys here: rule, with', '/rules/0');
    });

    it('inside `delivery` for transport local', () => {
      const text = yaml(...HEAD, '  host: sis.example.edu');
      expectIssue(onlyIssue(text), at(text, 'host'), 'unknown key "host"; allowed keys here: transport, directory, retry', '/delivery');
    });

    it('inside `output`', () => {
      const text = yaml(...HEAD, 'output:', '  filename: blocks.xml');
      expectIssue(onlyIssue(text), at(text, 'filename'), /^unknown key "filename"; allowed keys here: (.*, )?fileName(, |$)/, '/output');
    });
  });

  describe('YAML syntax errors', () => {
    function syntaxIssue(text: string): SourceIssue {
      const issue = onlyIssue(text);
      expect(issue.path, 'a syntax error has no schema path').to.equal(undefined);
      return issue;
    }

    it('bad indentation', () => {
      const text = yaml('id: test', 'currency: USD', 'delivery:', '  transport: local', ' directory: /srv/inbox');
      expectIssue(syntaxIssue(text), { line: 5, column: 1 }, /^YAML syntax error: .*same column/);
    });

    it('an unclosed quote is shown where the quote opens', () => {
      const text = yaml('id: test', 'description: "Blocks for Banner', ...HEAD.slice(1));
      expectIssue(syntaxIssue(text), at(text, '"Blocks'), /^YAML syntax error: Missing closing "quote .*never closed/);
    });

    it('a duplicate key is shown at its second occurrence', () => {
      const text = yaml(...HEAD, 'currency: EUR');
      expectIssue(syntaxIssue(text), at(text, 'currency: EUR'), /^YAML syntax error: Map keys must be unique/);
    });

    it('a tab used for indentation', () => {
      const text = yaml('id: test', 'currency: USD', 'delivery:', '  transport: local', '\tdirectory: /srv/inbox');
      expectIssue(syntaxIssue(text), { line: 5, column: 1 }, /^YAML syntax error: Tabs are not allowed as indentation/);
    });

    it('an unquoted cron schedule: one issue for its line, with the fix', () => {
      const text = yaml('id: test', 'schedule: * * * * *', ...HEAD.slice(1));
      expectIssue(syntaxIssue(text), at(text, '* * * * *'), /^YAML syntax error: .*[Aa]lias.*must be quoted: "\* \* \* \* \*"/);
    });

    it('an alias without its anchor is a profile error at the alias, not a crash', () => {
      const text = yaml('id: test', 'schedule: *daily', ...HEAD.slice(1));
      expectIssue(syntaxIssue(text), at(text, '*daily'), /^YAML error: Unresolved alias .*daily.*must be quoted/);
    });

    it('an alias bomb is refused as a profile error', () => {
      const text = yaml(
        'a: &a [x, x, x, x, x, x, x, x, x, x]',
        'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
        'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
        'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
      );
      const issue = syntaxIssue(text);
      expect(issue.line).to.be.a('number');
      expect(issue.message).to.match(/^YAML error: Excessive alias count/);
    });

    it('a document that is not a mapping', () => {
      for (const text of ['', '# only a comment\n', '- id: test\n', 'just text\n']) {
        expectIssue(onlyIssue(text), { line: 1, column: 1 }, 'a profile is a YAML mapping with at least id, currency and delivery', '/');
      }
    });
  });

  describe('output.fileName', () => {
    const unsafe = ['../x.xml', 'a/b.xml', '/etc/passwd', '.hidden.xml', 'x..xml', '..', 'a\\b.xml', 'user blocks.xml', ''];
    for (const fileName of unsafe) {
      it(`refuses ${JSON.stringify(fileName)} at the value`, () => {
        const text = yaml(...HEAD, 'output:', `  fileName: ${JSON.stringify(fileName)}`);
        expectIssue(onlyIssue(text), at(text, JSON.stringify(fileName)), `"fileName" ${FILE_NAME_RULE}`, '/output/fileName');
      });
    }

    it('refuses an unknown placeholder and names the known ones', () => {
      const text = yaml(...HEAD, 'output:', '  fileName: "{unknown}.xml"');
      expectIssue(onlyIssue(text), at(text, '"{unknown}'), 'unknown placeholder {unknown}; use {profile}, {runId}, {date}', '/output/fileName');
    });

    for (const fileName of ['{runId.xml', 'runId}.xml', 'x-{date}}.xml']) {
      it(`refuses the unbalanced ${JSON.stringify(fileName)}`, () => {
        const text = yaml(...HEAD, 'output:', `  fileName: "${fileName}"`);
        expectIssue(onlyIssue(text), at(text, `"${fileName}"`), 'unbalanced "{" or "}"', '/output/fileName');
      });
    }

    it('accepts plain names with every placeholder', () => {
      const text = yaml(...HEAD, 'output:', '  fileName: "{profile}_{date}-{runId}.v1.xml"');
      expect(parse(text).output.fileName).to.equal('{profile}_{date}-{runId}.v1.xml');
    });
  });

  describe('required keys and values checked beyond the schema', () => {
    for (const [key, lineIndex] of [['id', 0], ['currency', 1], ['delivery', 2]] as const) {
      it(`a missing \`${key}\` is named`, () => {
        const lines = [...HEAD];
        lines.splice(lineIndex, key === 'delivery' ? 3 : 1);
        const text = yaml('# comment line first', ...lines);
        expectIssue(onlyIssue(text), { line: 2, column: 1 }, `missing required key "${key}"`, '/');
      });
    }

    it('a delivery without its directory points at `delivery`', () => {
      const text = yaml('id: test', 'currency: USD', 'delivery:', '  transport: local');
      expectIssue(onlyIssue(text), at(text, 'delivery'), 'missing required key "directory"', '/delivery');
    });

    it('an invalid id', () => {
      const text = yaml('id: Main Campus', ...HEAD.slice(1));
      expectIssue(onlyIssue(text), at(text, 'Main Campus'), '"id" must be lower-case letters, digits and single hyphens, like "main-campus"', '/id');
    });

    it('an unknown currency', () => {
      const text = yaml('id: test', 'currency: XYZ', ...HEAD.slice(2));
      expectIssue(onlyIssue(text), at(text, 'XYZ'), '"XYZ" is not an ISO 4217 currency code known to this system', '/currency');
    });

    it('a currency that is not an ISO code at all', () => {
      const text = yaml('id: test', 'currency: usd', ...HEAD.slice(2));
      expectIssue(onlyIssue(text), at(text, 'usd'), '"currency" must be an ISO 4217 code like "USD"', '/currency');
    });

    it('a bad time zone', () => {
      const text = yaml(...HEAD, 'timezone: Mars/Olympus');
      expectIssue(onlyIssue(text), at(text, 'Mars/Olympus'), '"Mars/Olympus" is not an IANA time zone (like "America/New_York" or "UTC")', '/timezone');
    });

    it('a cron field out of range', () => {
      const text = yaml(...HEAD, 'schedule: "61 * * * *"');
      expectIssue(onlyIssue(text), at(text, '"61'), /^"61 \* \* \* \*" is not a valid cron expression: .*minute/, '/schedule');
    });

    it('a cron expression with too few fields', () => {
      const text = yaml(...HEAD, 'schedule: "* * *"');
      expectIssue(onlyIssue(text), at(text, '"* * *"'), '"* * *" has 3 fields; a schedule has 5 (minute hour day month weekday) or 6 (seconds first)', '/schedule');
    });

    it('accepts 6-field cron expressions (seconds first)', () => {
      expect(parse(yaml(...HEAD, 'schedule: "30 0 2 * * *"')).schedule).to.equal('30 0 2 * * *');
    });

    it('two identity rules: the second is pointed at', () => {
      const text = yaml(...HEAD, 'rules:', '  - rule: match-id', '    with: { idType: STUDENT_ID }', '  - rule: fine-age', '  - rule: match-id');
      expectIssue(onlyIssue(text), at(text, 'match-id', 2), 'only one identity rule may be listed; "match-id" is already at rules[0]', '/rules/2/rule');
    });

    it('reports every problem of a profile at once', () => {
      const text = yaml('id: Main Campus', 'currency: USD', 'delivery:', '  transport: local', '  directory: /srv/inbox', '  port: 22', 'rules:', '  - rule: foo');
      const issues = issuesOf(text);
      expect(issues.map((issue) => issue.path)).to.have.members(['/id', '/delivery', '/rules/0/rule']);
    });
  });

  describe('defaults', () => {
    it('fine-age listed without `with` gets days 30; match-id and threshold are added with their defaults', () => {
      const profile = parse(yaml(...HEAD, 'rules:', '  - rule: fine-age'));
      expect(ruleSummary(profile)).to.deep.equal([
        ['fine-age', { days: 30 }, 0],
        ['match-id', { idType: 'primary', missing: 'skip' }, -1],
        ['threshold', { amount: '0' }, -1],
      ]);
    });

    it('no rules at all: only the default identity and threshold', () => {
      expect(ruleSummary(parse(yaml(...HEAD)))).to.deep.equal([
        ['match-id', { idType: 'primary', missing: 'skip' }, -1],
        ['threshold', { amount: '0' }, -1],
      ]);
    });

    it('listed match-id and threshold are not added again; missing defaults to skip', () => {
      const profile = parse(yaml(...HEAD, 'rules:', '  - rule: threshold', '    with: { amount: "5.00" }', '  - rule: match-id', '    with: { idType: STUDENT_ID }'));
      expect(ruleSummary(profile)).to.deep.equal([
        ['threshold', { amount: '5.00' }, 0],
        ['match-id', { idType: 'STUDENT_ID', missing: 'skip' }, 1],
      ]);
    });

    it('output.fileName, timezone and source take their defaults', () => {
      const profile = parse(yaml(...HEAD));
      expect(profile.output).to.deep.equal({ fileName: DEFAULT_FILE_NAME });
      expect(DEFAULT_FILE_NAME).to.equal('user-blocks-{runId}.xml');
      expect(profile.timezone).to.equal('UTC');
      expect(profile.source).to.equal('native');
      expect(profile).to.not.have.property('schedule');
      expect(profile).to.not.have.property('database');
      expect(parse(yaml(...HEAD, 'output: {}')).output).to.deep.equal({ fileName: DEFAULT_FILE_NAME });
    });

    it('defaults are fresh for each profile, never shared', () => {
      const first = parse(yaml(...HEAD, 'rules:', '  - rule: fine-age'));
      first.rules[0]!.options.days = 99;
      first.rules[1]!.options.idType = 'CHANGED';
      const second = parse(yaml(...HEAD, 'rules:', '  - rule: fine-age'));
      expect(ruleSummary(second).slice(0, 2)).to.deep.equal([
        ['fine-age', { days: 30 }, 0],
        ['match-id', { idType: 'primary', missing: 'skip' }, -1],
      ]);
    });

    it('a relative delivery.directory is resolved against the profile file, an absolute one kept', async () => {
      expect(parse(yaml(...HEAD.slice(0, 4), '  directory: inbox')).delivery.options.directory).to.equal('/srv/sis-block-export/profiles.d/inbox');
      expect(parse(yaml(...HEAD)).delivery.options.directory).to.equal('/srv/inbox');

      const dir = path.join(tmp, 'etc', 'profiles.d');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'relative.yaml'), yaml(...HEAD.slice(0, 4), '  directory: ../../spool/inbox'));
      // Given as a path relative to the working directory, the file still anchors the directory.
      const profile = await loadProfileFile(path.relative(process.cwd(), path.join(dir, 'relative.yaml')), builtinRegistry);
      expect(profile.file).to.equal(path.join(dir, 'relative.yaml'));
      expect(profile.delivery.options.directory).to.equal(path.join(tmp, 'spool', 'inbox'));
      expect(profile.delivery.transport.id).to.equal('local');
    });

    it('loadProfileFile of a missing file is PROFILE_NOT_FOUND (exit 2)', async () => {
      const missing = path.join(tmp, 'nope.yaml');
      const error = await loadProfileFile(missing, builtinRegistry).then(
        () => expect.fail('accepted a missing file'),
        (caught: unknown) => caught,
      );
      expect(error).to.be.instanceOf(SbeError);
      expect((error as SbeError).code).to.equal('PROFILE_NOT_FOUND');
      expect((error as SbeError).exitCode).to.equal(2);
      expect((error as SbeError).message).to.equal(`cannot read profile ${missing}: no such file`);
    });
  });

  describe('the validate command', () => {
    const valid = path.join(FIXTURES, 'valid', 'local-inbox.yaml');
    const unknownRule = path.join(FIXTURES, 'invalid', 'unknown-rule.yaml');
    const unresolvedAlias = path.join(FIXTURES, 'invalid', 'unresolved-alias.yaml');
    const first = path.join(FIXTURES, 'duplicate-id', 'first.yaml');
    const second = path.join(FIXTURES, 'duplicate-id', 'second.yaml');
    const env = () => ({ SIS_BLOCK_EXPORT_CONFIG: path.join(tmp, 'no-such-config.yaml'), SIS_BLOCK_EXPORT_STATE_DIR: path.join(tmp, 'state') });

    it('a valid file: exit 0 and ok', async () => {
      const result = await runCli(['validate', valid], env(), NOW);
      expect(result).to.deep.equal({ code: 0, stdout: `${valid}: ok (profile local-inbox, 3 rule(s), delivery local)\n`, stderr: '' });
    });

    it('an invalid file among valid ones: exit 2, `file:line:column: message` for it, ok for the others', async () => {
      const result = await runCli(['validate', valid, unknownRule, path.join(EXAMPLES, 'main-campus.yaml')], env(), NOW);
      expect(result.code).to.equal(2);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines[0]).to.equal(`${valid}: ok (profile local-inbox, 3 rule(s), delivery local)`);
      expect(lines[1]).to.equal(`${unknownRule} is not a valid profile`);
      expect(lines[2]).to.equal(`  ${unknownRule}:5:11: unknown rule "fine-ages"; known rules: ${BUILTIN_RULES} (at /rules/0/rule)`);
      expect(lines[3]).to.match(/main-campus\.yaml: ok \(profile main-campus, 4 rule\(s\), delivery local\)$/);
      expect(lines).to.have.length(4);
      expect(result.stderr).to.equal('');
    });

    it('a YAML alias without anchor: exit 2 with its position, not an unexpected error', async () => {
      const result = await runCli(['validate', unresolvedAlias], env(), NOW);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.contain(`\n  ${unresolvedAlias}:3:11: YAML error: Unresolved alias`);
      expect(result.stderr).to.equal('');
    });

    it('two files with the same id: exit 2, naming both files', async () => {
      const result = await runCli(['validate', first, second], env(), NOW);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.equal(`${first}: ok (profile shared-id, 2 rule(s), delivery local)\n${second}: profile id "shared-id" is already used by ${first}\n`);
    });

    it('a missing file: exit 2, naming it', async () => {
      const missing = path.join(tmp, 'missing.yaml');
      const result = await runCli(['validate', missing], env(), NOW);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.equal(`cannot read profile ${missing}: no such file\n`);
    });

    it('an unknown option: exit 2 with a usage error, nothing validated', async () => {
      const result = await runCli(['validate', '--bogus', valid], env(), NOW);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain("unknown option '--bogus'");
      expect(result.stdout).to.equal('');
    });

    it('no file: exit 2 with a usage error', async () => {
      const result = await runCli(['validate'], env(), NOW);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain("missing required argument 'file'");
    });
  });
});

describe('profile database URL', () => {
  it('refuses a database URL that cannot be used, at its position', () => {
    const text = yaml(...HEAD, 'database: sqlite://lib.db');
    let caught: unknown;
    try {
      parseProfile(FILE, text, builtinRegistry);
    } catch (error) {
      caught = error;
    }
    expect(caught).to.be.instanceOf(SbeError);
    const [issue] = (caught as SbeError).issues;
    expect(issue).to.include({ file: FILE, ...at(text, 'sqlite://lib.db'), path: '/database' });
    expect(issue!.message).to.include('use sqlite:///absolute/path.db or sqlite:relative/path.db');
  });
});
