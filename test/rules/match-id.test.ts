import matchId from '../../rules/match-id';
import { testRule } from '../helpers/ruleTester';
import type { UserFixture } from '../helpers/sourceDb';

const withStudentIds: UserFixture[] = [
  { id: 1, primaryId: 'zed', ids: { STUDENT_ID: 'S0002' }, fines: [{ balance: 100 }] },
  { id: 2, primaryId: 'amy', ids: { STUDENT_ID: 'S0001' }, fines: [{ balance: 100 }] },
  { id: 3, primaryId: 'bob', ids: { BARCODE: '123' }, fines: [{ balance: 100 }] },
];

testRule(matchId, {
  sql: [
    {
      options: {},
      sqlite: ['select `u`.`id`, `u`.`primary_id` as `user_id_value` from `users` as `u` order by +`u`.`primary_id`', []],
      pg: ['select "u"."id", "u"."primary_id" as "user_id_value" from "users" as "u" order by "u"."primary_id" collate "C"', []],
      mysql: ['select `u`.`id`, `u`.`primary_id` as `user_id_value` from `users` as `u` order by cast(`u`.`primary_id` as binary)', []],
    },
    {
      options: { idType: 'STUDENT_ID' },
      sqlite: ['select `u`.`id`, `mid`.`value` as `user_id_value` from `users` as `u` left join `user_identifiers` as `mid` on `mid`.`user_id` = `u`.`id` and `mid`.`id_type` = ? order by +`mid`.`value`', ['STUDENT_ID']],
      pg: ['select "u"."id", "mid"."value" as "user_id_value" from "users" as "u" left join "user_identifiers" as "mid" on "mid"."user_id" = "u"."id" and "mid"."id_type" = $1 order by "mid"."value" collate "C"', ['STUDENT_ID']],
      mysql: ['select `u`.`id`, `mid`.`value` as `user_id_value` from `users` as `u` left join `user_identifiers` as `mid` on `mid`.`user_id` = `u`.`id` and `mid`.`id_type` = ? order by cast(`mid`.`value` as binary)', ['STUDENT_ID']],
    },
    {
      options: { idType: 'STUDENT_ID', missing: 'primary' },
      sqlite: ['select `u`.`id`, coalesce(`mid`.`value`, `u`.`primary_id`) as `user_id_value` from `users` as `u` left join `user_identifiers` as `mid` on `mid`.`user_id` = `u`.`id` and `mid`.`id_type` = ? order by +coalesce(`mid`.`value`, `u`.`primary_id`)', ['STUDENT_ID']],
      pg: ['select "u"."id", coalesce("mid"."value", "u"."primary_id") as "user_id_value" from "users" as "u" left join "user_identifiers" as "mid" on "mid"."user_id" = "u"."id" and "mid"."id_type" = $1 order by coalesce("mid"."value", "u"."primary_id") collate "C"', ['STUDENT_ID']],
      mysql: ['select `u`.`id`, coalesce(`mid`.`value`, `u`.`primary_id`) as `user_id_value` from `users` as `u` left join `user_identifiers` as `mid` on `mid`.`user_id` = `u`.`id` and `mid`.`id_type` = ? order by cast(coalesce(`mid`.`value`, `u`.`primary_id`) as binary)', ['STUDENT_ID']],
    },
  ],
  invalid: [
    { options: { missing: 'maybe' }, message: /\/rules\/0\/with\/missing .*must be one of: "skip", "primary"/ },
    { options: { idType: '' }, message: /\/rules\/0\/with\/idType/ },
    { options: { idType: 'STUDENT_ID', extra: 1 }, message: /unknown key "extra"; allowed keys here: idType, missing/ },
  ],
  data: [
    {
      name: 'primary id by default, in code-point order',
      options: {},
      users: withStudentIds,
      exported: ['amy', 'bob', 'zed'],
    },
    {
      name: 'orders by the match id, not the primary id',
      options: { idType: 'STUDENT_ID', missing: 'primary' },
      // bob has no student id and is exported under "bob", which sorts after "S0002".
      users: withStudentIds,
      exported: ['amy', 'zed', 'bob'],
    },
    {
      name: 'code-point order: upper case before lower case, astral after U+FFFD',
      options: {},
      users: [
        { id: 1, primaryId: 'b', fines: [{ balance: 1 }] },
        { id: 2, primaryId: 'B', fines: [{ balance: 1 }] },
        { id: 3, primaryId: '\u{1F600}', fines: [{ balance: 1 }] },
        { id: 4, primaryId: '\uFFFD', fines: [{ balance: 1 }] },
        { id: 5, primaryId: 'é', fines: [{ balance: 1 }] },
      ],
      exported: ['B', 'b', 'é', '\uFFFD', '\u{1F600}'],
    },
  ],
});
