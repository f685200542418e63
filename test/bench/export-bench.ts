/**
 * Export benchmark: `npm run bench -- [--users N] [--keep DIR] [--json] [--now ISO]`.
 *
 * 1. Seeds N demo users into a fresh SQLite database in a temporary directory
 *    (`sis-block-export db seed --demo`, timed on its own).
 * 2. Times one full export (select, stream the XML into the outbox, deliver it to a local
 *    directory) with a profile that exports everyone with a block or a positive balance
 *    (match-id STUDENT_ID with missing: primary, fine-age days 0, no other rule).
 * 3. Checks the file is complete (ends with </userBlocksExport>) and that its
 *    <summary users="..."> equals the JSON summary; exits 1 when not.
 *
 * Both commands run as child processes through test/bench/measure-child.ts, so the peak RSS
 * reported is that of the export process alone (process.resourceUsage().maxRSS), without
 * needing GNU time. The temporary directory is removed unless --keep DIR is given.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import sqlite3 from 'sqlite3';
import { parseDatabaseUrl } from '../../daemon/database';
import { withDatabase } from '../helpers/dialectDb';
import type { ChildMeasurement } from './measure-child';

const DEFAULT_USERS = 100_000;
const DEFAULT_NOW = '2026-12-04T02:00:00Z';
const MIB = 1024 * 1024;

interface Options {
  users: number;
  keep?: string;
  json: boolean;
  now: string;
  /** Sign the export (XML-DSig and OpenPGP, keys made by `keys generate`). */
  signed: boolean;
  /** Source dialect: SQLite in the work directory, or a fresh database on the PG_URL / MYSQL_URL server. */
  dialect: 'sqlite' | 'pg' | 'mysql';
}

const USAGE = `usage: npm run bench -- [--users N] [--keep DIR] [--json] [--now ISO]
  --users N    demo users to seed (default ${DEFAULT_USERS})
  --keep DIR   work in DIR (created; must be empty or absent) and keep it for inspection
  --json       print the result as JSON
  --now ISO    run time for the seed and the export (default ${DEFAULT_NOW})
  --signed     sign the export (XML-DSig and OpenPGP, method: both)
  --dialect D  sqlite (default), pg or mysql: a fresh database sbe_bench on the server of
               $PG_URL / $MYSQL_URL, dropped afterwards unless --keep`;

class UsageError extends Error {}

/** A fresh database `sbe_bench` on the PostgreSQL or MariaDB server of PG_URL / MYSQL_URL. */
async function createServerDatabase(dialect: 'pg' | 'mysql'): Promise<{ url: string; sizeBytes(): Promise<number>; drop(): Promise<void> }> {
  const adminUrl = dialect === 'pg' ? process.env.PG_URL! : process.env.MYSQL_URL!;
  const admin = knexFactory(parseDatabaseUrl(adminUrl).knexConfig);
  const name = dialect === 'pg' ? '"sbe_bench"' : '`sbe_bench`';
  await admin.raw(`drop database if exists ${name}`);
  await admin.raw(`create database ${name}`);
  return {
    url: withDatabase(adminUrl, 'sbe_bench'),
    async sizeBytes() {
      const result = (await admin.raw(dialect === 'pg'
        ? "select pg_database_size('sbe_bench') as size"
        : "select sum(data_length + index_length) as size from information_schema.tables where table_schema = 'sbe_bench'")) as { rows?: { size: string }[] } & [{ size: string }[]];
      return Number(dialect === 'pg' ? result.rows![0]!.size : result[0][0]!.size);
    },
    async drop() {
      await admin.raw(`drop database if exists ${name}${dialect === 'pg' ? ' with (force)' : ''}`);
      await admin.destroy();
    },
  };
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { users: DEFAULT_USERS, json: false, now: DEFAULT_NOW, dialect: 'sqlite', signed: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--users': {
        const v = value().replace(/_/g, '');
        if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--users must be a positive whole number, not "${v}"`);
        options.users = Number(v);
        break;
      }
      case '--keep':
        options.keep = path.resolve(value());
        break;
      case '--json':
        options.json = true;
        break;
      case '--signed':
        options.signed = true;
        break;
      case '--now':
        options.now = value();
        break;
      case '--dialect': {
        const v = value();
        if (v !== 'sqlite' && v !== 'pg' && v !== 'mysql') throw new UsageError(`--dialect must be sqlite, pg or mysql, not "${v}"`);
        if (v !== 'sqlite' && !process.env[v === 'pg' ? 'PG_URL' : 'MYSQL_URL']) throw new UsageError(`--dialect ${v} needs $${v === 'pg' ? 'PG_URL' : 'MYSQL_URL'}`);
        options.dialect = v;
        break;
      }
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"`);
    }
  }
  return options;
}

const distRoot = path.resolve(__dirname, '..', '..');
const packageRoot = path.resolve(distRoot, '..');
const measureChild = path.join(__dirname, 'measure-child.js');

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrFile: string;
  wallMs: number;
  measured?: ChildMeasurement;
  argv: string[];
}

/** Runs `node measure-child.js RUSAGE -- args` and collects stdout; stderr goes to a log file. */
async function runCli(workDir: string, label: string, args: string[], env: NodeJS.ProcessEnv): Promise<ChildResult> {
  const rusageFile = path.join(workDir, `${label}.rusage.json`);
  const stderrFile = path.join(workDir, `${label}.stderr.log`);
  const argv = [measureChild, rusageFile, '--', ...args];
  const stderrFd = fs.openSync(stderrFile, 'w');
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, argv, { cwd: workDir, env, stdio: ['ignore', 'pipe', stderrFd] });
  fs.closeSync(stderrFd);
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const result: ChildResult = { code, signal, stdout: Buffer.concat(chunks).toString('utf8'), stderrFile, wallMs, argv: [process.execPath, ...argv] };
  if (fs.existsSync(rusageFile)) result.measured = JSON.parse(fs.readFileSync(rusageFile, 'utf8')) as ChildMeasurement;
  return result;
}

function failChild(label: string, result: ChildResult): never {
  const stderr = fs.existsSync(result.stderrFile) ? fs.readFileSync(result.stderrFile, 'utf8') : '';
  throw new Error(`${label} failed (exit ${result.code ?? `signal ${result.signal}`})\n--- stdout\n${result.stdout.slice(-4000)}\n--- stderr\n${stderr.slice(-4000)}`);
}

function sqliteVersion(): Promise<string> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(':memory:', (openError) => {
      if (openError) return reject(openError);
      db.get('select sqlite_version() as version', (error: Error | null, row: { version: string } | undefined) => {
        db.close();
        if (error) reject(error);
        else resolve(row?.version ?? 'unknown');
      });
    });
  });
}

function packageVersion(name: string): string {
  try {
    const file = require.resolve(`${name}/package.json`, { paths: [packageRoot] });
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The last `bytes` of a file (the summary and the closing tag live there). */
function readTail(file: string, bytes: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export interface FileCheck {
  problems: string[];
  fileBytes: number;
  complete: boolean;
  fileUsers: number | undefined;
}

/**
 * The export file is complete (its last non-blank text is `</userBlocksExport>`), holds the
 * bytes the summary claims, and its `<summary users=... blocks=...>` equals the JSON summary.
 * (Names and notes cannot fake the element: XML escapes their `<`.)
 */
export function checkExportFile(xmlFile: string, bytes: number, users: number, blocks: number): FileCheck {
  const problems: string[] = [];
  const fileBytes = fs.statSync(xmlFile).size;
  if (fileBytes !== bytes) problems.push(`${xmlFile} holds ${fileBytes} bytes, the summary says ${bytes}`);
  const tail = readTail(xmlFile, 64 * 1024);
  const complete = tail.trimEnd().endsWith('</userBlocksExport>');
  if (!complete) problems.push(`${xmlFile} does not end with </userBlocksExport> (incomplete file)`);
  const summaryElements = tail.match(/<summary\b[^>]*>/g);
  const summaryElement = summaryElements?.[summaryElements.length - 1];
  const fileUsersText = summaryElement ? /\busers="(\d+)"/.exec(summaryElement)?.[1] : undefined;
  const fileBlocksText = summaryElement ? /\bblocks="(\d+)"/.exec(summaryElement)?.[1] : undefined;
  const fileUsers = fileUsersText === undefined ? undefined : Number(fileUsersText);
  if (fileUsers === undefined) problems.push(`${xmlFile} has no <summary users="..."> near its end`);
  else if (fileUsers !== users) problems.push(`<summary users="${fileUsers}"> in the file, but the JSON summary says ${users}`);
  if (fileBlocksText !== undefined && Number(fileBlocksText) !== blocks) problems.push(`<summary blocks="${fileBlocksText}"> in the file, but the JSON summary says ${blocks}`);
  return { problems, fileBytes, complete, fileUsers };
}

interface ExportJson {
  runId: string;
  users: number;
  blocks: number;
  skippedMissingMatchId: number;
  activeBalanceTotal: string;
  file?: { path: string; name: string; bytes: number; sha256: string };
  destination?: string;
}

function profileYaml(inbox: string, keysDir?: string): string {
  const signing = keysDir
    ? [
      '  signing:',
      '    method: both',
      `    privateKey: ${JSON.stringify(path.join(keysDir, 'signing.pem'))}`,
      '    keyName: bench',
      `    pgpKey: ${JSON.stringify(path.join(keysDir, 'pgp-secret.asc'))}`,
    ]
    : [];
  return [
    '# Written by test/bench/export-bench.ts: everyone with a counting block or a positive balance.',
    'id: bench',
    'description: Export benchmark',
    'currency: USD',
    'rules:',
    '  - rule: match-id',
    '    with: { idType: STUDENT_ID, missing: primary }',
    '  - rule: fine-age',
    '    with: { days: 0 }',
    'output:',
    '  fileName: "user-blocks-{runId}.xml"',
    ...signing,
    'delivery:',
    '  transport: local',
    `  directory: ${JSON.stringify(inbox)}`,
    '',
  ].join('\n');
}

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));

interface Phases {
  /** main() start until "export started": config, profile, opening and checking the source. */
  setupSeconds: number;
  /** "export started" until "export built": selection, XML, fsync, rename. */
  buildSeconds: number;
  /** "export built" until "export delivered": the local transport's copy, fsync, rename. */
  deliverySeconds: number;
}

/**
 * Splits the export's wall time by the timestamps of its own log lines (text format:
 * `<ISO time> info  export started|built|delivered ...`); null when they are not there.
 */
function exportPhases(stderrFile: string, mainMs: number): Phases | null {
  const times = new Map<string, number>();
  for (const line of fs.readFileSync(stderrFile, 'utf8').split('\n')) {
    const match = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+\w+\s+export (started|built|delivered)\b/.exec(line);
    if (match) times.set(match[2]!, Date.parse(match[1]!));
  }
  const started = times.get('started');
  const built = times.get('built');
  const delivered = times.get('delivered');
  if (started === undefined || built === undefined || delivered === undefined) return null;
  const buildMs = built - started;
  const deliveryMs = delivered - built;
  return { setupSeconds: round(Math.max(0, mainMs - buildMs - deliveryMs) / 1000, 2), buildSeconds: round(buildMs / 1000, 2), deliverySeconds: round(deliveryMs / 1000, 2) };
}

async function bench(options: Options): Promise<number> {
  if (!fs.existsSync(measureChild) || !fs.existsSync(path.join(distRoot, 'daemon', 'cli.js'))) {
    throw new Error(`the project is not built: run "npx tsc -p ." in ${packageRoot}`);
  }
  let workDir: string;
  if (options.keep) {
    fs.mkdirSync(options.keep, { recursive: true });
    if (fs.readdirSync(options.keep).length > 0) throw new UsageError(`--keep ${options.keep}: the directory is not empty`);
    workDir = options.keep;
  } else {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbe-bench-'));
  }
  let server: Awaited<ReturnType<typeof createServerDatabase>> | undefined;
  try {
    const dbFile = path.join(workDir, 'library.db');
    const stateDir = path.join(workDir, 'state');
    const inbox = path.join(workDir, 'inbox');
    fs.mkdirSync(stateDir);
    fs.mkdirSync(inbox);
    server = options.dialect === 'sqlite' ? undefined : await createServerDatabase(options.dialect);
    const database = server?.url ?? `sqlite://${dbFile}`;
    const configFile = path.join(workDir, 'config.yaml');
    fs.writeFileSync(configFile, `database: ${JSON.stringify(database)}\nstateDir: ${JSON.stringify(stateDir)}\nlog:\n  level: info\n  format: text\n`);
    const profileFile = path.join(workDir, 'bench-profile.yaml');
    const keysDir = options.signed ? path.join(workDir, 'keys') : undefined;
    fs.writeFileSync(profileFile, profileYaml(inbox, keysDir));
    const env: NodeJS.ProcessEnv = { ...process.env, SIS_BLOCK_EXPORT_STATE_DIR: stateDir };
    delete env.NOTIFY_SOCKET;
    delete env.JOURNAL_STREAM;

    const progress = (line: string): void => {
      if (!options.json) process.stderr.write(`${line}\n`);
    };

    if (keysDir) {
      const keys = await runCli(workDir, 'keys', ['keys', 'generate', '--out', keysDir, '--pgp', '--name', 'Bench', '--email', 'bench@example.edu'], env);
      if (keys.code !== 0) failChild('keys generate', keys);
    }

    // 1. Seed.
    progress(`seeding ${options.users} demo users into ${server ? database : dbFile} ...`);
    const seedArgs = ['db', 'seed', '--demo', '--users', String(options.users), '--database', database, '--now', options.now];
    const seed = await runCli(workDir, 'seed', seedArgs, env);
    if (seed.code !== 0 || seed.measured?.exitCode !== 0) failChild('db seed', seed);
    const seedCounts = /seeded (\d+) users, (\d+) identifiers, (\d+) blocks, (\d+) fines/.exec(seed.stdout);
    const dbBytes = server ? await server.sizeBytes() : fs.statSync(dbFile).size;

    // 2. Export.
    progress(`exporting (profile ${profileFile}) ...`);
    const exportArgs = ['export', '--profile', profileFile, '--config', configFile, '--now', options.now, '--json'];
    const run = await runCli(workDir, 'export', exportArgs, env);
    if (run.code !== 0 || run.measured?.exitCode !== 0 || !run.measured) failChild('export', run);
    let summary: ExportJson;
    try {
      summary = JSON.parse(run.stdout) as ExportJson;
    } catch {
      throw new Error(`export printed no JSON summary:\n${run.stdout.slice(0, 2000)}`);
    }
    if (!summary.file) throw new Error('the export summary names no file');

    // 3. Check the delivered file (and that it is byte for byte the size the summary claims).
    const problems: string[] = [];
    const delivered = path.join(inbox, summary.file.name);
    const xmlFile = fs.existsSync(delivered) ? delivered : summary.file.path;
    if (!fs.existsSync(delivered)) problems.push(`the delivered file ${delivered} does not exist`);
    const check = checkExportFile(xmlFile, summary.file.bytes, summary.users, summary.blocks);
    problems.push(...check.problems);
    const { fileBytes, complete, fileUsers } = check;

    const exportSeconds = run.wallMs / 1000;
    const seedSeconds = seed.wallMs / 1000;
    const m = run.measured!;
    const phases = exportPhases(run.stderrFile, m.mainMs);
    const reproduce = `npm run bench -- --users ${options.users}${options.signed ? ' --signed' : ''}${options.dialect === 'sqlite' ? '' : ` --dialect ${options.dialect}`}${options.now === DEFAULT_NOW ? '' : ` --now ${options.now}`}${options.json ? ' --json' : ''}`;
    const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
    const result = {
      ok: problems.length === 0,
      problems,
      environment: {
        node: process.version,
        sqlite: await sqliteVersion(),
        sqlite3Package: packageVersion('sqlite3'),
        knex: packageVersion('knex'),
        platform: `${os.platform()} ${os.release()} ${os.arch()}`,
        cpu: `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}`,
        totalMemoryMiB: Math.round(os.totalmem() / MIB),
      },
      now: options.now,
      workDir: options.keep ? workDir : null,
      seed: {
        users: seedCounts ? Number(seedCounts[1]) : options.users,
        identifiers: seedCounts ? Number(seedCounts[2]) : null,
        blocks: seedCounts ? Number(seedCounts[3]) : null,
        fines: seedCounts ? Number(seedCounts[4]) : null,
        wallSeconds: round(seedSeconds, 2),
        usersPerSecond: Math.round(options.users / seedSeconds),
        peakRssMiB: seed.measured ? round(seed.measured.maxRssKiB / 1024) : null,
        databaseBytes: dbBytes,
        databaseMiB: round(dbBytes / MIB, 2),
      },
      export: {
        sourceUsers: options.users,
        users: summary.users,
        blocks: summary.blocks,
        skippedMissingMatchId: summary.skippedMissingMatchId,
        activeBalanceTotal: summary.activeBalanceTotal,
        wallSeconds: round(exportSeconds, 2),
        mainSeconds: round(m.mainMs / 1000, 2),
        startupSeconds: round(m.startupMs / 1000, 2),
        cpuUserSeconds: round(m.userCpuMs / 1000, 2),
        cpuSystemSeconds: round(m.systemCpuMs / 1000, 2),
        phases,
        storageWrittenMiB: round((m.fsWriteBlocks * 512) / MIB),
        exportedUsersPerSecond: Math.round(summary.users / exportSeconds),
        sourceUsersPerSecond: Math.round(options.users / exportSeconds),
        peakRssMiB: round(m.maxRssKiB / 1024),
        heapUsedAtEndMiB: round(m.heapUsedMiB),
        file: {
          path: options.keep ? xmlFile : path.basename(xmlFile),
          bytes: fileBytes,
          MiB: round(fileBytes / MIB, 2),
          sha256: summary.file.sha256,
          complete,
          summaryUsers: fileUsers ?? null,
        },
      },
      reproduce: {
        bench: reproduce,
        seed: [path.join(packageRoot, 'bin', 'sis-block-export'), ...seedArgs].map(shellQuote).join(' '),
        export: `SIS_BLOCK_EXPORT_STATE_DIR=${shellQuote(stateDir)} ${[path.join(packageRoot, 'bin', 'sis-block-export'), ...exportArgs].map(shellQuote).join(' ')}`,
        measuredExport: `SIS_BLOCK_EXPORT_STATE_DIR=${shellQuote(stateDir)} ${run.argv.map(shellQuote).join(' ')}`,
      },
    };

    if (options.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      const e = result.export;
      const s = result.seed;
      const lines = [
        `sis-block-export export benchmark (${result.ok ? 'ok' : 'FAILED'})`,
        `  node ${result.environment.node}, SQLite ${result.environment.sqlite} (sqlite3 ${result.environment.sqlite3Package}, knex ${result.environment.knex}), ${result.environment.platform}`,
        `  cpu ${result.environment.cpu}, memory ${result.environment.totalMemoryMiB} MiB; run time --now ${options.now}`,
        `seed:   ${s.users} users seeded (${s.identifiers} identifiers, ${s.blocks} blocks, ${s.fines} fines/fees) in ${s.wallSeconds.toFixed(2)} s (${s.usersPerSecond} users/s, peak RSS ${s.peakRssMiB} MiB, database ${s.databaseMiB} MiB)`,
        `export: ${e.users} users exported of ${e.sourceUsers} (${e.skippedMissingMatchId} skipped), ${e.blocks} blocks, active balance total ${e.activeBalanceTotal} USD`,
        `        wall ${e.wallSeconds.toFixed(2)} s (main() ${e.mainSeconds.toFixed(2)} s, node start + module load ${e.startupSeconds.toFixed(2)} s; cpu user ${e.cpuUserSeconds.toFixed(2)} s, sys ${e.cpuSystemSeconds.toFixed(2)} s)`,
        ...(e.phases ? [`        phases: setup + source checks ${e.phases.setupSeconds.toFixed(2)} s, select + write XML ${e.phases.buildSeconds.toFixed(2)} s, local delivery ${e.phases.deliverySeconds.toFixed(2)} s; ~${e.storageWrittenMiB} MiB written to storage`] : []),
        `        ${e.exportedUsersPerSecond} exported users/s, ${e.sourceUsersPerSecond} source users/s`,
        `        file ${e.file.bytes} bytes (${e.file.MiB} MiB), complete: ${e.file.complete ? 'yes' : 'NO'}, <summary users="${e.file.summaryUsers}">`,
        `        peak RSS of the export process: ${e.peakRssMiB} MiB (heap used at end ${e.heapUsedAtEndMiB} MiB)`,
        `reproduce: ${result.reproduce.bench}`,
        `  the export step alone (needs --keep DIR): ${result.reproduce.export}`,
      ];
      if (options.keep) lines.push(`kept: ${workDir}`);
      for (const problem of problems) lines.push(`PROBLEM: ${problem}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    if (!options.keep) fs.rmSync(workDir, { recursive: true, force: true });
    if (server && !options.keep) await server.drop();
  }
}

async function cli(): Promise<void> {
  let options: Options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    process.exitCode = await bench(options);
  } catch (error) {
    process.stderr.write(`bench: ${error instanceof UsageError ? error.message : (error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
}

if (require.main === module) void cli();
