import blockTypes from '../../rules/block-types';
import { testRule } from '../helpers/ruleTester';

const users = [
  { id: 1, primaryId: 'cash', blocks: [{ type: 'CASH' }] },
  { id: 2, primaryId: 'note', blocks: [{ type: 'NOTE' }] },
  { id: 3, primaryId: 'both', blocks: [{ type: 'NOTE' }, { type: 'LOAN' }] },
  // A user whose only block does not count still qualifies by balance.
  { id: 4, primaryId: 'fined', blocks: [{ type: 'NOTE' }], fines: [{ balance: 1 }] },
];

testRule(blockTypes, {
  sql: [
    {
      options: { include: ['CASH'] },
      sqlite: ['select `b`.`id` from `user_blocks` as `b` where `b`.`block_type` in (?)', ['CASH']],
      pg: ['select "b"."id" from "user_blocks" as "b" where "b"."block_type" in ($1)', ['CASH']],
      mysql: ['select `b`.`id` from `user_blocks` as `b` where `b`.`block_type` in (?)', ['CASH']],
    },
    {
      options: { exclude: ['NOTE'] },
      sqlite: ['select `b`.`id` from `user_blocks` as `b` where (`b`.`block_type` is null or `b`.`block_type` not in (?))', ['NOTE']],
      pg: ['select "b"."id" from "user_blocks" as "b" where ("b"."block_type" is null or "b"."block_type" not in ($1))', ['NOTE']],
      mysql: ['select `b`.`id` from `user_blocks` as `b` where (`b`.`block_type` is null or `b`.`block_type` not in (?))', ['NOTE']],
    },
  ],
  invalid: [
    { options: { include: [1] }, message: /\/rules\/0\/with\/include\/0 "0" must be of type string/ },
    { options: { types: ['CASH'] }, message: /unknown key "types"; allowed keys here: include, exclude/ },
  ],
  data: [
    { name: 'include: only users with a listed block type (or a balance)', options: { include: ['CASH', 'LOAN'] }, users, exported: ['both', 'cash', 'fined'] },
    { name: 'exclude: informational blocks do not count', options: { exclude: ['NOTE'] }, users, exported: ['both', 'cash', 'fined'] },
    { name: 'include of a type nobody has', options: { include: ['LOST'] }, users, exported: ['fined'] },
  ],
});
