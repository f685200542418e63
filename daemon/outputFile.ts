import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const FLUSH_BYTES = 256 * 1024;

/**
 * A file written under a hidden temp name, then fsynced and renamed: nobody sees it under
 * its final name before it is complete. Chunks are batched and written with backpressure;
 * the SHA-256 of the content is computed on the way.
 */
export class AtomicOutputFile {
  private readonly handle: Promise<fsp.FileHandle>;
  private pending: string[] = [];
  private pendingBytes = 0;
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  constructor(readonly finalPath: string) {
    this.handle = fsp.open(this.tempPath, 'w', 0o640);
  }

  get tempPath(): string {
    return path.join(path.dirname(this.finalPath), `.${path.basename(this.finalPath)}.part`);
  }

  /** Buffers a chunk; resolves after a write when enough has accumulated. */
  async write(chunk: string): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    this.pendingBytes = 0;
    this.hash.update(data);
    this.bytes += data.length;
    const handle = await this.handle;
    let offset = 0;
    while (offset < data.length) offset += (await handle.write(data, offset)).bytesWritten;
  }

  /** Flushes, fsyncs, renames to the final name and fsyncs the directory. Returns the sha256. */
  async commit(): Promise<string> {
    await this.flush();
    const handle = await this.handle;
    await handle.sync();
    await handle.close();
    await fsp.rename(this.tempPath, this.finalPath);
    await syncDirectory(path.dirname(this.finalPath));
    return this.hash.digest('hex');
  }

  /** Removes the temp file (after a failure). */
  async discard(): Promise<void> {
    await this.handle.then((handle) => handle.close()).catch(() => undefined);
    await fsp.rm(this.tempPath, { force: true });
  }
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
