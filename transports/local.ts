import fs from 'node:fs/promises';
import path from 'node:path';
import { SbeError } from '../daemon/errors';
import { syncDirectory } from '../daemon/outputFile';
import { defineTransport, retryProperty, type DeliveryFile, type RetryOptions } from '../daemon/transportApi';

export interface LocalOptions {
  transport: 'local';
  directory: string;
  retry: RetryOptions;
}

const REFUSED = new Set(['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EROFS']);

/** Copies `file` to a hidden temp name beside its final name, fsyncs it, renames it, fsyncs the directory. */
async function publish(directory: string, file: DeliveryFile): Promise<void> {
  const temp = path.join(directory, `.${file.name}.part`);
  const target = path.join(directory, file.name);
  // A stale temp file from an interrupted attempt is simply overwritten.
  await fs.copyFile(file.localPath, temp);
  const handle = await fs.open(temp, 'r+');
  try {
    const { size } = await handle.stat();
    if (size !== file.size) throw new Error(`copied ${size} bytes of ${file.size} to ${temp}`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, target);
  await syncDirectory(directory);
}

export default defineTransport<LocalOptions>({
  id: 'local',
  description:
    'Writes the export into a local directory (for a mounted SIS inbox or a pick-up script): a hidden temp name in '
    + 'the target directory, fsync, then rename, so a reader never sees a partial file under the final name.',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['transport', 'directory'],
    properties: {
      transport: { const: 'local' },
      directory: { type: 'string', minLength: 1, description: 'Target directory; relative to the profile file. Must exist.' },
      retry: retryProperty,
    },
  },
  examples: [{ transport: 'local', directory: '/srv/sis-inbox', retry: { attempts: 3, initialDelay: '1s', maxDelay: '30s' } }],
  pathFields: ['directory'],
  create({ directory }) {
    return {
      describe: () => `local:${directory}`,
      async deliver(files) {
        try {
          const stat = await fs.stat(directory);
          if (!stat.isDirectory()) throw Object.assign(new Error(`${directory} is not a directory`), { code: 'ENOTDIR' });
          for (const file of files) await publish(directory, file);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? '';
          const reason = code === 'ENOENT' ? `directory ${directory} does not exist` : (error as Error).message;
          throw new SbeError(REFUSED.has(code) ? 'DELIVERY_REFUSED' : 'DELIVERY_FAILED', `delivering to ${directory}: ${reason}`, { cause: error });
        }
      },
    };
  },
});
