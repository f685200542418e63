import { defineRule } from '../daemon/ruleApi';
import { parseMajorAmount } from '../daemon/money';

export interface ThresholdOptions {
  amount: string | number;
}

function thresholdMinor(amount: string | number, currency: string): number {
  const minor = parseMajorAmount(String(amount), currency);
  if (minor < 0n) throw new RangeError(`threshold "${amount}" is negative`);
  if (minor > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`threshold "${amount}" is too large`);
  return Number(minor);
}

export default defineRule<ThresholdOptions>({
  id: 'threshold',
  description:
    'Exports a user who has a counting block or whose qualifying balance is strictly greater than `amount` '
    + '(major units of the profile currency, compared exactly in minor units). Applied with `amount: "0"` when not listed.',
  stage: 'qualification',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      amount: {
        type: ['string', 'number'],
        pattern: '^[0-9]+(\\.[0-9]+)?$',
        patternHint: 'must be a decimal amount in major units with a "." for the decimals, like "5.00"',
        minimum: 0,
        default: '0',
        description: 'Threshold in major units, e.g. "5.00".',
      },
    },
  },
  examples: [{ amount: '5.00' }, { amount: '0' }],
  check({ amount }, { currency }) {
    try {
      thresholdMinor(amount, currency);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  },
  apply(qb, { amount }, ctx) {
    const minor = thresholdMinor(amount, ctx.currency);
    qb.where((w) => w.whereNotNull('cb.id').orWhere(ctx.knex.raw('coalesce(??, 0)', ['q.qualifying_minor']), '>', minor));
  },
});
