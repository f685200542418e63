import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../daemon/config';
import { SbeError, type SourceIssue } from '../../daemon/errors';
import { defaultDatabaseUrl, defaultStateDir, packageRoot } from '../../daemon/paths';
import { runCli } from '../helpers/cli';

const NOW = () => new Date('2026-12-04T02:00:00Z');

describe('daemon/config', () => {
  let tmp: string;
  let counter = 0;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-config-'));
  });
  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Writes `text` as config.yaml in a fresh directory and returns its path. */
  function configFile(text: string): string {
    const dir = path.join(tmp, `etc-${++counter}`);
    fs.mkdirSync(dir);
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, text);
    return file;
  }

  async function configIssues(file: string): Promise<{ error: SbeError; issues: SourceIssue[] }> {
    const caught = await loadConfig(file, { SIS_BLOCK_EXPORT_STATE_DIR: path.join(tmp, 'state') }).then(
      () => expect.fail(`${file} was accepted`),
      (error: unknown) => error,
    );
    expect(caught).to.be.instanceOf(SbeError);
    const error = caught as SbeError;
    expect(error.code).to.equal('CONFIG_INVALID');
    expect(error.exitCode).to.equal(2);
    return { error, issues: [...error.issues] };
  }

  describe('invalid files', () => {
    it('an unknown top-level key: CONFIG_INVALID at the key, listing the allowed keys', async () => {
      const file = configFile('profilesDir: profiles.d\nrulesdir: rules\n');
      const { error, issues } = await configIssues(file);
      expect(error.message).to.equal(`${file} is not a valid configuration`);
      expect(issues).to.deep.equal([
        { file, line: 2, column: 1, path: '/', message: 'unknown key "rulesdir"; allowed keys here: profilesDir, stateDir, database, rulesDir, ledger, outboxRetention, shutdownGrace, log' },
      ]);
    });

    it('an unknown key under log', async () => {
      const file = configFile('log:\n  level: info\n  colour: red\n');
      const { issues } = await configIssues(file);
      expect(issues).to.deep.equal([{ file, line: 3, column: 3, path: '/log', message: 'unknown key "colour"; allowed keys here: level, format' }]);
    });

    it('a log level that does not exist, at the value', async () => {
      const file = configFile('log:\n  level: verbose\n');
      const { issues } = await configIssues(file);
      expect(issues).to.deep.equal([{ file, line: 2, column: 10, path: '/log/level', message: '"level" must be one of: "error", "warn", "info", "debug"' }]);
    });

    it('a value of the wrong type, at the value', async () => {
      const file = configFile('stateDir: 42\n');
      const { issues } = await configIssues(file);
      expect(issues).to.deep.equal([{ file, line: 1, column: 11, path: '/stateDir', message: '"stateDir" must be of type string' }]);
    });

    it('a YAML syntax error with line and column', async () => {
      const file = configFile('log:\n\tlevel: info\n');
      const { error, issues } = await configIssues(file);
      expect(error.message).to.equal(`${file} is not valid YAML`);
      expect(issues).to.have.length(1);
      expect(issues[0]).to.include({ file, line: 2, column: 1 });
      expect(issues[0]!.message).to.match(/^YAML syntax error: Tabs are not allowed/);
    });

    it('a document that is not a mapping', async () => {
      const file = configFile('- profilesDir: x\n');
      const { issues } = await configIssues(file);
      expect(issues).to.deep.equal([{ file, line: 1, column: 1, path: '/', message: 'the document must be of type object' }]);
    });

    it('--config naming a missing file: CONFIG_INVALID, even though the default file may be absent', async () => {
      const missing = path.join(tmp, 'nowhere', 'config.yaml');
      const { error } = await configIssues(missing);
      expect(error.message).to.equal(`cannot read ${missing}: no such file`);
    });
  });

  describe('defaults', () => {
    it('an empty file: profiles.d beside it, the state directory from SIS_BLOCK_EXPORT_STATE_DIR, SQLite in it', async () => {
      const file = configFile('# nothing set\n');
      const state = path.join(tmp, 'state-from-env');
      const config = await loadConfig(file, { SIS_BLOCK_EXPORT_STATE_DIR: state });
      expect(config).to.deep.equal({
        file,
        baseDir: path.dirname(file),
        profilesDir: path.join(path.dirname(file), 'profiles.d'),
        stateDir: state,
        database: `sqlite://${path.join(state, 'library.db')}`,
        outboxRetention: '30d',
        shutdownGrace: '30s',
        log: { level: 'info' },
      });
      expect(config.database).to.equal(defaultDatabaseUrl(state));
      expect(config.database.startsWith('sqlite:///'), 'an absolute sqlite URL').to.equal(true);
    });

    it('relative values are resolved against the config file; the default database follows stateDir', async () => {
      const file = configFile('profilesDir: profiles\nstateDir: ../state\nrulesDir: site-rules\nlog: { level: debug, format: json }\n');
      const dir = path.dirname(file);
      const config = await loadConfig(file, { SIS_BLOCK_EXPORT_STATE_DIR: '/ignored/because/the/config/sets/it' });
      expect(config).to.deep.include({
        profilesDir: path.join(dir, 'profiles'),
        stateDir: path.join(tmp, 'state'),
        rulesDir: path.join(dir, 'site-rules'),
        database: `sqlite://${path.join(tmp, 'state', 'library.db')}`,
        log: { level: 'debug', format: 'json' },
      });
    });

    it('an explicit database is kept as written (resolved later against baseDir)', async () => {
      const file = configFile('database: sqlite:library.db\n');
      const config = await loadConfig(file, { SIS_BLOCK_EXPORT_STATE_DIR: path.join(tmp, 'state') });
      expect(config.database).to.equal('sqlite:library.db');
      expect(config.baseDir).to.equal(path.dirname(file));
    });

    it('no config file at SIS_BLOCK_EXPORT_CONFIG: every value takes its default', async () => {
      const absent = path.join(tmp, 'absent', 'config.yaml');
      const config = await loadConfig(undefined, { SIS_BLOCK_EXPORT_CONFIG: absent, SIS_BLOCK_EXPORT_STATE_DIR: path.join(tmp, 's') });
      expect(config).to.deep.equal({
        baseDir: path.dirname(absent),
        profilesDir: path.join(path.dirname(absent), 'profiles.d'),
        stateDir: path.join(tmp, 's'),
        database: `sqlite://${path.join(tmp, 's', 'library.db')}`,
        outboxRetention: '30d',
        shutdownGrace: '30s',
        log: { level: 'info' },
      });
    });

    it('SIS_BLOCK_EXPORT_CONFIG names the file read when there is no --config', async () => {
      const file = configFile('profilesDir: /srv/profiles\n');
      const config = await loadConfig(undefined, { SIS_BLOCK_EXPORT_CONFIG: file, SIS_BLOCK_EXPORT_STATE_DIR: path.join(tmp, 's') });
      expect(config.file).to.equal(file);
      expect(config.profilesDir).to.equal('/srv/profiles');
    });
  });

  describe('defaultStateDir (SPEC 8)', () => {
    it('SIS_BLOCK_EXPORT_STATE_DIR wins for root and others', () => {
      expect(defaultStateDir({ SIS_BLOCK_EXPORT_STATE_DIR: '/srv/sbe', XDG_STATE_HOME: '/xdg' }, 0)).to.equal('/srv/sbe');
      expect(defaultStateDir({ SIS_BLOCK_EXPORT_STATE_DIR: '/srv/sbe', XDG_STATE_HOME: '/xdg' }, 1000)).to.equal('/srv/sbe');
    });

    it('root: /var/lib/sis-block-export, whatever XDG_STATE_HOME says', () => {
      expect(defaultStateDir({}, 0)).to.equal('/var/lib/sis-block-export');
      expect(defaultStateDir({ XDG_STATE_HOME: '/xdg' }, 0)).to.equal('/var/lib/sis-block-export');
    });

    it('others: $XDG_STATE_HOME/sis-block-export, else ~/.local/state/sis-block-export', () => {
      expect(defaultStateDir({ XDG_STATE_HOME: '/home/lib/.state' }, 1000)).to.equal('/home/lib/.state/sis-block-export');
      expect(defaultStateDir({}, 1000)).to.equal(path.join(os.homedir(), '.local', 'state', 'sis-block-export'));
    });

    it('the default source is library.db in the state directory', () => {
      expect(defaultDatabaseUrl('/var/lib/sis-block-export')).to.equal('sqlite:///var/lib/sis-block-export/library.db');
    });
  });

  describe('on the command line', () => {
    const profile = path.join(packageRoot, 'test', 'fixtures', 'profiles', 'valid', 'local-inbox.yaml');

    it('validate --config with a missing file: exit 2, naming the file', async () => {
      const missing = path.join(tmp, 'missing', 'config.yaml');
      const result = await runCli(['validate', '--config', missing, profile], {}, NOW);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain(`cannot read ${missing}: no such file`);
      expect(result.stderr).to.contain('code=CONFIG_INVALID');
      expect(result.stdout, 'no profile is validated').to.equal('');
    });

    it('validate --config with an unknown key: exit 2 with file:line:column', async () => {
      const file = configFile('log:\n  level: info\nprofileDir: /srv/profiles\n');
      const result = await runCli(['validate', '--config', file, profile], {}, NOW);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain(`${file}:3:1: unknown key "profileDir"; allowed keys here: profilesDir, stateDir, database, rulesDir, ledger, outboxRetention, shutdownGrace, log`);
      expect(result.stdout).to.equal('');
    });

    it('validate --config with a valid file: exit 0', async () => {
      const file = configFile('log: { level: warn }\n');
      const result = await runCli(['validate', '--config', file, profile], {}, NOW);
      expect(result).to.deep.include({ code: 0, stderr: '' });
      expect(result.stdout).to.match(/: ok \(profile local-inbox,/);
    });
  });
});
