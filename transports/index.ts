import type { AnyTransport } from '../daemon/transportApi';
import local from './local';
import sftp from './sftp';

/** The transports, by id, sorted. */
export const transports: ReadonlyMap<string, AnyTransport> = new Map<string, AnyTransport>([
  ['local', local],
  ['sftp', sftp],
]);
