import { defineRule } from '../daemon/ruleApi';

export interface FineAgeOptions {
  days: number;
}

const DAY_MS = 86_400_000;

export default defineRule<FineAgeOptions>({
  id: 'fine-age',
  description:
    'Counts a fine/fee towards the qualifying balance only when it is at least `days` days old (`created_at <= now - days`, '
    + 'days of 24 hours). 0 counts every active fine. Without this rule every active fine counts.',
  stage: 'fines',
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      days: { type: 'integer', minimum: 0, maximum: 36500, default: 30, description: 'Minimum age in days.' },
    },
  },
  examples: [{ days: 30 }, { days: 0 }],
  apply(qb, { days }, ctx) {
    if (days === 0) return;
    const bound = new Date(ctx.now.getTime() - days * DAY_MS);
    qb.where(ctx.dialect.timestamp('f.created_at'), '<=', ctx.dialect.timestampValue(bound));
  },
});
