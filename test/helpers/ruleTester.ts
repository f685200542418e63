import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { dialectFor } from '../../daemon/dialect';
import type { DialectName } from '../../daemon/database';
import { SbeError } from '../../daemon/errors';
import type { AnyRule, RuleContext, Stage } from '../../daemon/ruleApi';
import nativeRelations from '../../daemon/sources/native';
import { compileSchema } from '../../daemon/validator';
import { createSqliteSource, insertUsers, makeProfile, select, type TestSource, type UserFixture } from './sourceDb';

const NOW = new Date('2026-12-04T02:00:00Z');

/** Offline Knex instances: SQL is compiled, never run. */
const offline: Record<DialectName, Knex> = {
  sqlite: knexFactory({ client: 'sqlite3', useNullAsDefault: true }),
  pg: knexFactory({ client: 'pg' }),
  mysql: knexFactory({ client: 'mysql2' }),
};

/** The builder a rule of `stage` refines, as the selection creates it. */
function stageBuilder(knex: Knex, stage: Stage): Knex.QueryBuilder {
  switch (stage) {
    case 'blocks':
      return knex('user_blocks as b').select('b.id');
    case 'fines':
      return knex('fines_fees as f').select('f.user_id');
    default:
      return knex('users as u').select('u.id');
  }
}

export interface SqlCase {
  options: Record<string, unknown>;
  /** Native SQL and bindings for each dialect. */
  sqlite: [string, unknown[]];
  pg: [string, unknown[]];
  mysql: [string, unknown[]];
}

export interface InvalidCase {
  options: Record<string, unknown>;
  /** The message a person sees, with the path of the offending value. */
  message: RegExp;
}

export interface DataCase {
  name: string;
  options: Record<string, unknown>;
  users: UserFixture[];
  /** primary ids of the users exported, in order. */
  exported: string[];
  now?: Date;
}

export interface RuleTestCases {
  sql: SqlCase[];
  invalid: InvalidCase[];
  data: DataCase[];
}

function assertCasesUsable(name: string, cases: readonly object[]): void {
  if (cases.length === 0) throw new Error(`rule tester: no ${name} cases; every rule needs some`);
  const seen = new Set<string>();
  for (const testCase of cases) {
    const key = JSON.stringify(testCase);
    if (seen.has(key)) throw new Error(`rule tester: duplicate ${name} case ${key}`);
    seen.add(key);
  }
}

/** Options as a profile would give them: validated, with the schema's defaults. */
function withDefaults(rule: AnyRule, options: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = compileSchema(rule.schema);
  if (!validate(copy)) throw new Error(`rule tester: options ${JSON.stringify(options)} are invalid: ${JSON.stringify(validate.errors)}`);
  return copy;
}

/**
 * Tests one rule as STYLE.md asks: the SQL it adds for every dialect without a database,
 * its option errors through the real profile validation, and its effect on real SQLite data.
 */
export function testRule(rule: AnyRule, cases: RuleTestCases): void {
  assertCasesUsable('sql', cases.sql);
  assertCasesUsable('invalid', cases.invalid);
  assertCasesUsable('data', cases.data);

  describe(`rule ${rule.id}`, () => {
    it('declares a complete spec', () => {
      expect(rule.description).to.be.a('string').and.not.empty;
      expect(rule.schema).to.include({ type: 'object', additionalProperties: false });
      expect(rule.examples).to.not.be.empty;
      for (const example of rule.examples) expect(compileSchema(rule.schema)(structuredClone(example)), JSON.stringify(example)).to.equal(true);
    });

    describe('SQL', () => {
      for (const testCase of cases.sql) {
        for (const dialectName of ['sqlite', 'pg', 'mysql'] as const) {
          it(`${dialectName}: ${JSON.stringify(testCase.options)}`, () => {
            const knex = offline[dialectName];
            const ctx: RuleContext = {
              knex,
              dialect: dialectFor(dialectName, knex),
              now: NOW,
              currency: 'USD',
              relation: (name, alias) => nativeRelations.relation(knex, name, alias, { currency: 'USD', now: NOW }),
            };
            const qb = stageBuilder(knex, rule.stage);
            rule.apply(qb, withDefaults(rule, testCase.options), ctx);
            const { sql, bindings } = qb.toSQL().toNative();
            const [expectedSql, expectedBindings] = testCase[dialectName];
            expect(sql).to.equal(expectedSql);
            expect(bindings).to.deep.equal(expectedBindings);
          });
        }
      }
    });

    describe('invalid options', () => {
      for (const testCase of cases.invalid) {
        it(JSON.stringify(testCase.options), () => {
          let error: unknown;
          try {
            makeProfile({ rules: [{ rule: rule.id, with: testCase.options }] });
          } catch (caught) {
            error = caught;
          }
          expect(error).to.be.instanceOf(SbeError);
          const sbe = error as SbeError;
          expect(sbe.exitCode).to.equal(2);
          const text = sbe.issues.map((issue) => `${issue.path} ${issue.message}`).join('\n');
          expect(text).to.match(testCase.message);
          for (const issue of sbe.issues) expect(issue.line, 'every issue has a line').to.be.a('number');
        });
      }
    });

    describe('on SQLite data', () => {
      let source: TestSource;
      beforeEach(async () => {
        source = await createSqliteSource();
      });
      afterEach(async () => {
        await source.close();
      });
      for (const testCase of cases.data) {
        it(testCase.name, async () => {
          await insertUsers(source.knex, testCase.users);
          const profile = makeProfile({ rules: [{ rule: rule.id, with: testCase.options }] });
          const users = await select(source.knex, profile, testCase.now ?? NOW);
          expect(users.map((user) => user.primaryId)).to.deep.equal(testCase.exported);
        });
      }
    });
  });
}
