import excludeInternal from '../../rules/exclude-internal';
import { testRule } from '../helpers/ruleTester';

testRule(excludeInternal, {
  sql: [
    {
      options: {},
      sqlite: ['select `u`.`id` from `users` as `u` where not `u`.`account_type` = ?', ['INTERNAL']],
      pg: ['select "u"."id" from "users" as "u" where not "u"."account_type" = $1', ['INTERNAL']],
      mysql: ['select `u`.`id` from `users` as `u` where not `u`.`account_type` = ?', ['INTERNAL']],
    },
  ],
  invalid: [{ options: { really: true }, message: /unknown key "really"; no keys are allowed here/ }],
  data: [
    {
      name: 'internal users are left out',
      options: {},
      users: [
        { id: 1, primaryId: 'staff', accountType: 'INTERNAL', blocks: [{}] },
        { id: 2, primaryId: 'student', accountType: 'EXTERNAL', blocks: [{}] },
      ],
      exported: ['student'],
    },
  ],
});
