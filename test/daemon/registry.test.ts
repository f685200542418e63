import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { dialectFor } from '../../daemon/dialect';
import { SbeError } from '../../daemon/errors';
import { packageRoot } from '../../daemon/paths';
import { parseProfile } from '../../daemon/profiles';
import { builtinRegistry, checkRuleDefinition, loadRegistry, type Registry } from '../../daemon/registry';
import { composeSelection } from '../../daemon/selection';
import nativeRelations from '../../daemon/sources/native';
import { runCli } from '../helpers/cli';
import { createSqliteSource, insertUsers, select } from '../helpers/sourceDb';

const RULE_FIXTURES = path.join(packageRoot, 'test', 'fixtures', 'rules');
const SITE_PROFILE = path.join(packageRoot, 'test', 'fixtures', 'profiles', 'site-rule', 'uses-exclude-status.yaml');
const NOW = new Date('2026-12-04T02:00:00Z');
const BUILTIN_IDS = ['block-types', 'exclude-internal', 'fine-age', 'match-id', 'threshold', 'user-groups'];
const FILE = '/srv/sis-block-export/profiles.d/site.yaml';

function profileText(...ruleLines: string[]): string {
  return ['id: site', 'currency: USD', 'delivery:', '  transport: local', '  directory: /srv/inbox', 'rules:', ...ruleLines, ''].join('\n');
}

async function loadError(dir: string): Promise<SbeError> {
  const caught = await loadRegistry(dir).then(
    () => expect.fail(`the rules in ${dir} were accepted`),
    (error: unknown) => error,
  );
  expect(caught).to.be.instanceOf(SbeError);
  const error = caught as SbeError;
  expect(error.code).to.equal('RULE_INVALID');
  expect(error.exitCode).to.equal(2);
  return error;
}

describe('daemon/registry', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-registry-'));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the built-in registry holds exactly the SPEC 4 rules, sorted, and the local transport', () => {
    expect([...builtinRegistry.rules.keys()]).to.deep.equal(BUILTIN_IDS);
    expect([...builtinRegistry.transports.keys()]).to.include('local');
  });

  it('no rules directory: the built-in registry itself', async () => {
    expect(await loadRegistry(undefined)).to.equal(builtinRegistry);
  });

  describe('a valid site rule', () => {
    let registry: Registry;
    before(async () => {
      registry = await loadRegistry(path.join(RULE_FIXTURES, 'valid'));
    });

    it('is loaded beside the built-ins, in id order, without changing the built-in registry', () => {
      expect([...registry.rules.keys()]).to.deep.equal([...BUILTIN_IDS.slice(0, 2), 'exclude-status', ...BUILTIN_IDS.slice(2)]);
      const rule = registry.rules.get('exclude-status')!;
      expect(rule.stage).to.equal('users');
      expect(rule.examples).to.deep.equal([{ keep: 'ACTIVE' }]);
      expect(builtinRegistry.rules.has('exclude-status')).to.equal(false);
    });

    it('a relative rules directory works too', async () => {
      const relative = path.relative(process.cwd(), path.join(RULE_FIXTURES, 'valid'));
      expect(path.isAbsolute(relative)).to.equal(false);
      const again = await loadRegistry(relative);
      expect(again.rules.get('exclude-status')?.description).to.equal(registry.rules.get('exclude-status')?.description);
    });

    it('is usable in a profile: defaults applied, its clause in the composed selection', () => {
      const profile = parseProfile(FILE, profileText('  - rule: exclude-status'), registry);
      expect(profile.rules.map(({ rule, options, index }) => [rule.id, options, index])).to.deep.equal([
        ['exclude-status', { keep: 'ACTIVE' }, 0],
        ['match-id', { idType: 'primary', missing: 'skip' }, -1],
        ['threshold', { amount: '0' }, -1],
      ]);
      const knex = knexFactory({ client: 'sqlite3', useNullAsDefault: true });
      const { sql, bindings } = composeSelection({ knex, dialect: dialectFor('sqlite', knex), relations: nativeRelations, rules: profile.rules, now: NOW, currency: 'USD' })
        .toSQL()
        .toNative();
      expect(sql).to.contain('where `u`.`status` = ?');
      expect(bindings).to.include('ACTIVE');
    });

    it('selects on real data: a suspended user with a block is left out', async () => {
      const source = await createSqliteSource();
      try {
        await insertUsers(source.knex, [
          { id: 1, primaryId: 'active', blocks: [{ type: 'CASH' }] },
          { id: 2, primaryId: 'suspended', status: 'SUSPENDED', blocks: [{ type: 'CASH' }] },
        ]);
        const withRule = parseProfile(FILE, profileText('  - rule: exclude-status'), registry);
        expect((await select(source.knex, withRule, NOW)).map((user) => user.primaryId)).to.deep.equal(['active']);
        const keepSuspended = parseProfile(FILE, profileText('  - rule: exclude-status', '    with: { keep: SUSPENDED }'), registry);
        expect((await select(source.knex, keepSuspended, NOW)).map((user) => user.primaryId)).to.deep.equal(['suspended']);
      } finally {
        await source.close();
      }
    });

    it('its option errors are reported like a built-in rule\'s, with position', () => {
      const wrongType = profileText('  - rule: exclude-status', '    with: { keep: 5 }');
      const unknownKey = profileText('  - rule: exclude-status', '    with: { kep: ACTIVE }');
      const badPattern = profileText('  - rule: exclude-status', '    with: { keep: active }');
      const issuesOf = (text: string) => {
        try {
          parseProfile(FILE, text, registry);
        } catch (error) {
          expect(error).to.be.instanceOf(SbeError);
          expect((error as SbeError).code).to.equal('PROFILE_INVALID');
          return (error as SbeError).issues;
        }
        return expect.fail('accepted');
      };
      expect(issuesOf(wrongType)).to.deep.equal([{ file: FILE, line: 8, column: 19, path: '/rules/0/with/keep', message: '"keep" must be of type string' }]);
      expect(issuesOf(unknownKey)).to.deep.equal([{ file: FILE, line: 8, column: 13, path: '/rules/0/with', message: 'unknown key "kep"; allowed keys here: keep' }]);
      expect(issuesOf(badPattern)).to.deep.equal([{ file: FILE, line: 8, column: 19, path: '/rules/0/with/keep', message: '"keep" must match the pattern ^[A-Z_]+$' }]);
    });

    it('without the rules directory the same profile names an unknown rule', () => {
      try {
        parseProfile(FILE, profileText('  - rule: exclude-status'), builtinRegistry);
      } catch (error) {
        expect((error as SbeError).issues).to.deep.equal([
          { file: FILE, line: 7, column: 11, path: '/rules/0/rule', message: `unknown rule "exclude-status"; known rules: ${BUILTIN_IDS.join(', ')}` },
        ]);
        return;
      }
      expect.fail('accepted');
    });

    it('registries loaded one after another (reloads) each validate profiles', async () => {
      const reloaded = await loadRegistry(path.join(RULE_FIXTURES, 'valid'));
      expect(reloaded).to.not.equal(registry);
      for (const current of [registry, reloaded, builtinRegistry, reloaded]) {
        expect(parseProfile(FILE, profileText('  - rule: fine-age'), current).rules[0]!.options).to.deep.equal({ days: 30 });
      }
      expect(parseProfile(FILE, profileText('  - rule: exclude-status'), reloaded).rules[0]!.rule.id).to.equal('exclude-status');
    });
  });

  describe('refused site rule modules (RULE_INVALID, naming the file)', () => {
    const cases: { dir: string; file: string; message: string }[] = [
      { dir: 'id-mismatch', file: 'status-filter.js', message: 'rule id "exclude-status" must equal the file name "status-filter"' },
      { dir: 'open-schema', file: 'open-schema.js', message: '`schema` must be an object schema with additionalProperties: false' },
      { dir: 'unknown-stage', file: 'unknown-stage.js', message: '`stage` must be one of users, identity, blocks, fines, qualification' },
      { dir: 'shadows-builtin', file: 'threshold.js', message: 'rule id "threshold" is already taken by a built-in rule' },
      { dir: 'schema-ref', file: 'schema-ref.js', message: '`schema` must be self-contained: no $id or $ref (it is embedded in the profile schema)' },
      { dir: 'duplicate-id', file: 'same-rule.js', message: `rule id "same-rule" is already taken by the site rule ${path.join(RULE_FIXTURES, 'duplicate-id', 'same-rule.cjs')}` },
    ];
    for (const testCase of cases) {
      it(`${testCase.dir}: ${testCase.message}`, async () => {
        const error = await loadError(path.join(RULE_FIXTURES, testCase.dir));
        expect(error.message).to.equal(`${path.join(RULE_FIXTURES, testCase.dir, testCase.file)}: ${testCase.message}`);
      });
    }

    it('a module that throws while loading', async () => {
      const file = path.join(RULE_FIXTURES, 'throws-on-load', 'throws-on-load.js');
      const error = await loadError(path.dirname(file));
      expect(error.message).to.equal(`${file}: cannot be loaded: site rule exploded while loading`);
      expect((error.cause as Error).message).to.equal('site rule exploded while loading');
    });

    it('a schema that Ajv cannot compile', () => {
      const origin = path.join(tmp, 'bad-schema.js');
      const candidate = {
        id: 'bad-schema',
        description: 'A typo in a type name.',
        stage: 'users',
        schema: { type: 'object', additionalProperties: false, properties: { keep: { type: 'strng' } } },
        apply() {},
      };
      expect(() => checkRuleDefinition(candidate, origin))
        .to.throw(SbeError, /bad-schema\.js: `schema` does not compile: /)
        .with.property('code', 'RULE_INVALID');
    });

    it('a missing rules directory is CONFIG_INVALID', async () => {
      const missing = path.join(tmp, 'no-rules-here');
      const caught = await loadRegistry(missing).then(
        () => expect.fail('accepted'),
        (error: unknown) => error,
      );
      expect(caught).to.be.instanceOf(SbeError);
      expect((caught as SbeError).code).to.equal('CONFIG_INVALID');
      expect((caught as SbeError).message).to.contain(`cannot read the rules directory ${missing}`);
    });
  });

  describe('validate with a config that names a rules directory', () => {
    function configWithRules(name: string): string {
      const file = path.join(tmp, `config-${name}.yaml`);
      fs.writeFileSync(file, `rulesDir: ${JSON.stringify(path.join(RULE_FIXTURES, name))}\n`);
      return file;
    }

    it('a profile using the valid site rule: exit 0', async () => {
      const result = await runCli(['validate', '--config', configWithRules('valid'), SITE_PROFILE], {}, () => NOW);
      expect(result).to.deep.equal({ code: 0, stdout: `${SITE_PROFILE}: ok (profile uses-exclude-status, 3 rule(s), delivery local)\n`, stderr: '' });
    });

    it('the same profile without the config: exit 2, unknown rule', async () => {
      const result = await runCli(['validate', SITE_PROFILE], {}, () => NOW);
      expect(result.code).to.equal(2);
      expect(result.stdout).to.contain(`${SITE_PROFILE}:5:11: unknown rule "exclude-status"; known rules: ${BUILTIN_IDS.join(', ')}`);
    });

    for (const [dir, file] of [['id-mismatch', 'status-filter.js'], ['open-schema', 'open-schema.js'], ['unknown-stage', 'unknown-stage.js'], ['shadows-builtin', 'threshold.js']]) {
      it(`a refused module (${dir}): exit 2, naming the module file`, async () => {
        const result = await runCli(['validate', '--config', configWithRules(dir!), SITE_PROFILE], {}, () => NOW);
        expect(result.code).to.equal(2);
        expect(result.stderr).to.contain(`${path.join(RULE_FIXTURES, dir!, file!)}: `);
        expect(result.stderr).to.contain('code=RULE_INVALID');
        expect(result.stdout).to.equal('');
      });
    }
  });
});
