import { durationSchema } from './duration';
import type { JsonSchema } from './ruleApi';
import type { Logger } from './logger';

/** One file to deliver: built in the outbox, delivered under `name`. */
export interface DeliveryFile {
  localPath: string;
  name: string;
  size: number;
}

export interface DeliveryContext {
  logger: Logger;
  /** Aborts a delivery in progress (shutdown). */
  signal?: AbortSignal;
}

/**
 * A transport puts files where the SIS reads them. `deliver` publishes the files in order,
 * each one atomically (never visible under its final name until complete); the last one is
 * the export itself, so companions such as signatures are in place before it appears.
 * Errors are SbeErrors: DELIVERY_REFUSED (not retried, exit 5) or DELIVERY_FAILED (exit 4).
 */
export interface Transport {
  deliver(files: readonly DeliveryFile[], ctx: DeliveryContext): Promise<void>;
  /** Where the files go, for log lines (no secrets). */
  describe(): string;
}

export interface TransportDefinition<Options = Record<string, unknown>> {
  readonly id: string;
  readonly description: string;
  /** JSON Schema of the `delivery` object (including `transport`), `additionalProperties: false`. */
  readonly schema: JsonSchema;
  readonly examples: readonly Options[];
  /** Options that are file system paths, resolved relative to the profile file. */
  readonly pathFields: readonly string[];
  create(options: Options): Transport;
}

export type AnyTransport = TransportDefinition<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function defineTransport<Options>(definition: TransportDefinition<Options>): TransportDefinition<Options> {
  return Object.freeze(definition);
}

/** Retry policy of a delivery: shared by every transport's schema as its `retry` property. */
export interface RetryOptions {
  attempts: number;
  initialDelay: string;
  maxDelay: string;
}

/**
 * `retry` in a transport's options: transient failures (DELIVERY_FAILED) are retried with
 * exponential backoff and full jitter; refusals (DELIVERY_REFUSED) never are.
 */
export const retryProperty: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description: 'Retries of transient delivery failures: exponential backoff with full jitter.',
  properties: {
    attempts: { type: 'integer', minimum: 1, maximum: 1000, default: 10, description: 'Attempts in all, the first included.' },
    initialDelay: durationSchema('5s', 'Upper bound of the first random delay.'),
    maxDelay: durationSchema('10m', 'Cap of the delay bound, which doubles after each failure.'),
  },
};
