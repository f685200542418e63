import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { runCli } from '../helpers/cli';
import { SERVERS, createDialectSource, type DialectSource } from '../helpers/dialectDb';

/** Every way a source database can be unusable is exit 3 with a message naming it; no secret is shown. */
describe('source database errors (issue 6)', function () {
  this.timeout(60_000);
  let work: string;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-dberr-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  async function exportFrom(database: string, env: NodeJS.ProcessEnv = {}) {
    const profile = path.join(work, `p-${Math.random().toString(36).slice(2)}.yaml`);
    fs.writeFileSync(profile, stringify({ id: 'dberr', currency: 'USD', database, delivery: { transport: 'local', directory: '.' } }));
    return runCli(['export', '--profile', profile], { SIS_BLOCK_EXPORT_STATE_DIR: path.join(work, 'state'), ...env });
  }


  for (const { dialect, url } of SERVERS) {
    describe(dialect, () => {
      before(function () {
        if (!url) this.skip();
      });

      it('a server that is down: exit 3, "cannot connect"', async () => {
        const down = new URL(url!);
        down.port = '1';
        const result = await exportFrom(down.toString());
        expect(result.code).to.equal(3);
        expect(result.stderr).to.match(/cannot connect to .*127\.0\.0\.1:1\/.*ECONNREFUSED/);
      });

      it('a login that is refused: exit 3, and the password never appears', async () => {
        const refused = new URL(url!);
        refused.username = 'sbe_no_such_user';
        refused.password = 'Sup3r-Secret-pw';
        const result = await exportFrom(refused.toString());
        expect(result.code).to.equal(3);
        expect(result.stderr).to.match(/cannot connect to .*sbe_no_such_user:\*\*\*@/);
        expect(result.stderr + result.stdout).to.not.include('Sup3r-Secret-pw');
      });

      it('a password from a file or an environment variable is used and never shown', async () => {
        const secretFile = path.join(work, 'db-password');
        fs.writeFileSync(secretFile, 'File-Secret-pw\n', { mode: 0o600 });
        const refused = new URL(url!);
        refused.username = 'sbe_no_such_user';
        refused.searchParams.set('passwordFile', secretFile);
        const fromFile = await exportFrom(refused.toString());
        expect(fromFile.code).to.equal(3);
        expect(fromFile.stderr).to.not.include('File-Secret-pw');
        refused.searchParams.delete('passwordFile');
        refused.searchParams.set('passwordEnv', 'SBE_TEST_DB_PASSWORD');
        const unset = await exportFrom(refused.toString());
        expect(unset.code).to.equal(2);
        expect(unset.stderr).to.include('the environment variable SBE_TEST_DB_PASSWORD (passwordEnv) is not set');
      });

      it('a database without the native tables: exit 3 naming them and the fix', async () => {
        let source: DialectSource | undefined;
        try {
          source = await createDialectSource(dialect, 'sbe_empty', { migrate: false });
          const result = await exportFrom(source.url);
          expect(result.code).to.equal(3);
          expect(result.stderr).to.include('lacks the table(s) users, user_identifiers, user_blocks, fines_fees of the native schema');
          expect(result.stderr).to.include('db migrate');
        } finally {
          await source?.drop();
        }
      });
    });
  }
});
