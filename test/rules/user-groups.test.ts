import userGroups from '../../rules/user-groups';
import { testRule } from '../helpers/ruleTester';

const users = [
  { id: 1, primaryId: 'ug', group: 'UG', fines: [{ balance: 100 }] },
  { id: 2, primaryId: 'grad', group: 'GRAD', fines: [{ balance: 100 }] },
  { id: 3, primaryId: 'alum', group: 'ALUMNI', fines: [{ balance: 100 }] },
  { id: 4, primaryId: 'none', group: null, fines: [{ balance: 100 }] },
];

testRule(userGroups, {
  sql: [
    {
      options: { include: ['UG', 'GRAD'] },
      sqlite: ['select `u`.`id` from `users` as `u` where `u`.`user_group` in (?, ?)', ['UG', 'GRAD']],
      pg: ['select "u"."id" from "users" as "u" where "u"."user_group" in ($1, $2)', ['UG', 'GRAD']],
      mysql: ['select `u`.`id` from `users` as `u` where `u`.`user_group` in (?, ?)', ['UG', 'GRAD']],
    },
    {
      options: { exclude: ['ALUMNI'] },
      sqlite: ['select `u`.`id` from `users` as `u` where (`u`.`user_group` is null or `u`.`user_group` not in (?))', ['ALUMNI']],
      pg: ['select "u"."id" from "users" as "u" where ("u"."user_group" is null or "u"."user_group" not in ($1))', ['ALUMNI']],
      mysql: ['select `u`.`id` from `users` as `u` where (`u`.`user_group` is null or `u`.`user_group` not in (?))', ['ALUMNI']],
    },
  ],
  invalid: [
    { options: { include: 'UG' }, message: /\/rules\/0\/with\/include "include" must be of type array/ },
    { options: { include: [] }, message: /\/rules\/0\/with\/include "include" must NOT have fewer than 1 items/ },
    { options: {}, message: /\/rules\/0\/with .*must not be empty/ },
    { options: { include: ['UG', 'UG'] }, message: /duplicate items/ },
  ],
  data: [
    { name: 'include keeps only the listed groups', options: { include: ['UG', 'GRAD'] }, users, exported: ['grad', 'ug'] },
    { name: 'exclude keeps users without a group', options: { exclude: ['ALUMNI'] }, users, exported: ['grad', 'none', 'ug'] },
  ],
});
