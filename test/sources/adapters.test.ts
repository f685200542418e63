import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { stringify } from 'yaml';
import { dialectFor } from '../../daemon/dialect';
import { builtinRules } from '../../rules';
import { composeSelection } from '../../daemon/selection';
import { sources } from '../../daemon/sources';
import evergreen from '../../daemon/sources/evergreen';
import koha from '../../daemon/sources/koha';
import type { CanonicalRelation } from '../../daemon/ruleApi';
import { runCli } from '../helpers/cli';
import { makeProfile } from '../helpers/sourceDb';

/** Offline Knex instances: SQL is compiled, never run. */
const mysql: Knex = knexFactory({ client: 'mysql2' });
const pg: Knex = knexFactory({ client: 'pg' });
const NOW = new Date('2026-12-04T02:00:00Z');
const RELATIONS: CanonicalRelation[] = ['users', 'user_identifiers', 'user_blocks', 'fines_fees', 'user_groups', 'block_types'];

function relationSql(knex: Knex, adapter: typeof koha, name: CanonicalRelation, currency = 'USD'): string {
  const relation = adapter.relation(knex, name, 'x', { currency, now: NOW });
  return typeof relation === 'string' ? relation : relation.toString();
}

describe('source adapters (SQL, no database)', () => {
  it('are registered by id, sorted, each for its dialect', () => {
    expect([...sources.keys()]).to.deep.equal(['evergreen', 'koha', 'native']);
    expect(sources.get('koha')!.dialects).to.deep.equal(['mysql']);
    expect(sources.get('evergreen')!.dialects).to.deep.equal(['pg']);
  });

  for (const [adapter, knex] of [[koha, mysql], [evergreen, pg]] as const) {
    it(`${adapter.id}: every canonical relation has the canonical columns`, () => {
      const columns: Record<CanonicalRelation, string[]> = {
        users: ['id', 'primary_id', 'first_name', 'last_name', 'user_group', 'account_type', 'status'],
        user_identifiers: ['user_id', 'id_type', 'value'],
        user_blocks: ['id', 'user_id', 'block_type', 'description', 'note', 'status', 'created_at', 'expires_at'],
        fines_fees: ['id', 'user_id', 'status', 'balance_minor', 'created_at'],
        user_groups: ['code', 'description'],
        block_types: ['code', 'description'],
      };
      const quote = knex === mysql ? '`' : '"';
      for (const name of RELATIONS) {
        const sql = relationSql(knex, adapter, name);
        for (const column of columns[name]) {
          // `... as column`, or a column selected under its own name (`alias.column`, `column`).
          expect(new RegExp(`(as |\\.|select |, )${quote}?${column}${quote}?[,\\s)]`).test(`${sql} `), `${adapter.id} ${name} lacks ${column}: ${sql}`).to.equal(true);
        }
      }
    });

    it(`${adapter.id}: the selection with every built-in rule compiles`, () => {
      const profile = makeProfile({
        rules: [
          { rule: 'match-id', with: { idType: 'STUDENT_ID', missing: 'primary' } },
          { rule: 'user-groups', with: { include: ['UG'] } },
          { rule: 'block-types', with: { exclude: ['NOTE'] } },
          { rule: 'fine-age', with: { days: 30 } },
          { rule: 'threshold', with: { amount: '5.00' } },
          { rule: 'exclude-internal' },
        ],
      });
      expect(profile.rules.map(({ rule }) => rule.id).sort()).to.deep.equal([...builtinRules.keys()].sort());
      const dialect = dialectFor(adapter.dialects[0]!, knex);
      const { sql } = composeSelection({ knex, dialect, relations: adapter, rules: profile.rules, now: NOW, currency: 'USD' }).toSQL().toNative();
      expect(sql).to.be.a('string').and.not.to.include('undefined');
    });
  }

  it('koha: amounts in exact minor units of the currency, TIMESTAMPs as UTC', () => {
    expect(relationSql(mysql, koha, 'fines_fees')).to.include('cast(round(`ka`.`amountoutstanding` * 100) as signed) as balance_minor');
    expect(relationSql(mysql, koha, 'fines_fees', 'JPY')).to.include('round(`ka`.`amountoutstanding` * 1)');
    expect(relationSql(mysql, koha, 'fines_fees', 'KWD')).to.include('round(`ka`.`amountoutstanding` * 1000)');
    expect(relationSql(mysql, koha, 'fines_fees')).to.include('where `ka`.`borrowernumber` is not null and `ka`.`amountoutstanding` <> 0');
    expect(relationSql(mysql, koha, 'fines_fees')).to.include("(cast('1970-01-01 00:00:00' as datetime) + interval unix_timestamp(`ka`.`date`) second) as created_at");
    expect(relationSql(mysql, koha, 'user_blocks')).to.include('cast(`kd`.`expiration` as datetime) as expires_at');
  });

  it('evergreen: open transactions with a balance; blocking penalties only; live users only', () => {
    expect(relationSql(pg, evergreen, 'fines_fees')).to.include('round("ex"."balance_owed" * 100)::bigint as balance_minor');
    expect(relationSql(pg, evergreen, 'fines_fees')).to.include('where "ex"."xact_finish" is null and "ex"."balance_owed" <> 0');
    expect(relationSql(pg, evergreen, 'user_blocks')).to.include(`where nullif(btrim("esp"."block_list"), '') is not null`);
    expect(relationSql(pg, evergreen, 'users')).to.include('where "eu"."deleted" = false and "eu"."active" = true');
    expect(relationSql(pg, evergreen, 'users')).to.include(`with recursive "staff_tree"("id") as (select "id" from "permission"."grp_tree" where "name" = 'Staff' union select`);
  });

  it('a profile naming a source on the wrong kind of database is refused (exit 2)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-adapter-'));
    try {
      fs.writeFileSync(path.join(dir, 'library.db'), '');
      const file = path.join(dir, 'p.yaml');
      fs.writeFileSync(file, stringify({ id: 'wrong', source: 'koha', database: 'sqlite:library.db', currency: 'USD', delivery: { transport: 'local', directory: '.' } }));
      const result = await runCli(['export', '--profile', file, '--dry-run'], { SIS_BLOCK_EXPORT_STATE_DIR: path.join(dir, 'state') });
      expect(result.code).to.equal(2);
      expect(result.stderr).to.include('source "koha" reads mysql databases, not sqlite');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
