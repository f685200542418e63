import { defineRule } from '../daemon/ruleApi';
import { includeExcludeSchema, whereIncludeExclude, type IncludeExclude } from './include-exclude';

export default defineRule<IncludeExclude>({
  id: 'block-types',
  description: 'Counts only blocks whose type is in `include` (and not in `exclude`). Without this rule every active block type counts.',
  stage: 'blocks',
  schema: includeExcludeSchema('block type code'),
  examples: [{ include: ['CASH', 'LOAN'] }, { exclude: ['NOTE'] }],
  apply(qb, options) {
    whereIncludeExclude(qb, 'b.block_type', options);
  },
});
