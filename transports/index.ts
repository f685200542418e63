import type { AnyTransport } from '../daemon/transportApi';
import local from './local';

/** The transports, by id, sorted. */
export const transports: ReadonlyMap<string, AnyTransport> = new Map<string, AnyTransport>([
  ['local', local],
]);
