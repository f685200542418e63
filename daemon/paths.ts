import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The package root (where package.json is), from compiled code under dist/ or from sources. */
export const packageRoot: string = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
})();

export const DEFAULT_CONFIG_FILE = '/etc/sis-block-export/config.yaml';

/**
 * SPEC 8: the config's `stateDir`, else $SIS_BLOCK_EXPORT_STATE_DIR, else
 * /var/lib/sis-block-export for root and $XDG_STATE_HOME/sis-block-export
 * (~/.local/state/sis-block-export) for others.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  if (env.SIS_BLOCK_EXPORT_STATE_DIR) return path.resolve(env.SIS_BLOCK_EXPORT_STATE_DIR);
  if (uid === 0) return '/var/lib/sis-block-export';
  const base = env.XDG_STATE_HOME ? path.resolve(env.XDG_STATE_HOME) : path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'sis-block-export');
}

/** The embedded default source: a SQLite file in the state directory. */
export function defaultDatabaseUrl(stateDir: string): string {
  return `sqlite://${path.join(stateDir, 'library.db')}`;
}
