import { defineRule } from '../daemon/ruleApi';

export default defineRule<Record<string, never>>({
  id: 'exclude-internal',
  description: 'Leaves out internal users (`account_type = INTERNAL`). Without it internal users are exported too, as Alma does.',
  stage: 'users',
  schema: { type: 'object', additionalProperties: false, properties: {} },
  examples: [{}],
  apply(qb) {
    qb.whereNot('u.account_type', 'INTERNAL');
  },
});
