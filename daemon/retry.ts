import { parseDuration } from './duration';
import { SbeError } from './errors';
import type { Logger } from './logger';
import type { RetryOptions } from './transportApi';

export interface RetryDeps {
  logger: Logger;
  signal?: AbortSignal;
  /** [0, 1): injected so tests can pin the jitter. */
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Full jitter: a random delay in [0, min(maxDelay, initialDelay * 2^(failures-1))). */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: () => number): number {
  const bound = Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 40));
  return Math.floor(random() * bound);
}

/**
 * Runs `attempt` until it succeeds, a refusal (DELIVERY_REFUSED) ends it, or the attempts
 * run out (DELIVERY_FAILED naming the last error). Each failure is logged with the delay.
 */
export async function withRetry<T>(what: string, policy: RetryOptions, attempt: (n: number) => Promise<T>, deps: RetryDeps): Promise<T> {
  const initial = parseDuration(policy.initialDelay);
  const max = parseDuration(policy.maxDelay);
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? abortableSleep;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (error instanceof SbeError && error.code === 'DELIVERY_REFUSED') throw error;
      if (deps.signal?.aborted) throw new SbeError('DELIVERY_FAILED', `${what}: aborted by shutdown after attempt ${n}`, { cause: error });
      const message = error instanceof Error ? error.message : String(error);
      if (n >= policy.attempts) {
        throw new SbeError('DELIVERY_FAILED', `${what}: failed after ${n} attempt(s): ${message}`, { cause: error });
      }
      const delay = backoffDelay(n, initial, max, random);
      deps.logger.warn(`${what}: attempt ${n} of ${policy.attempts} failed, retrying in ${(delay / 1000).toFixed(1)} s: ${message}`, { attempt: n });
      try {
        await sleep(delay, deps.signal);
      } catch {
        throw new SbeError('DELIVERY_FAILED', `${what}: aborted by shutdown after attempt ${n}: ${message}`, { cause: error });
      }
    }
  }
}
