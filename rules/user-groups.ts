import { defineRule } from '../daemon/ruleApi';
import { includeExcludeSchema, whereIncludeExclude, type IncludeExclude } from './include-exclude';

export default defineRule<IncludeExclude>({
  id: 'user-groups',
  description: 'Exports only users whose user group is in `include` (and not in `exclude`). A user without a group passes only an exclude-only rule.',
  stage: 'users',
  schema: includeExcludeSchema('user group code'),
  examples: [{ include: ['UG', 'GRAD'] }, { exclude: ['ALUMNI'] }],
  apply(qb, options) {
    whereIncludeExclude(qb, 'u.user_group', options);
  },
});
