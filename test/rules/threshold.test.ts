import threshold from '../../rules/threshold';
import { testRule } from '../helpers/ruleTester';

testRule(threshold, {
  sql: [
    {
      options: {},
      sqlite: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [0]],
      pg: ['select "u"."id" from "users" as "u" where ("cb"."id" is not null or coalesce("q"."qualifying_minor", 0) > $1)', [0]],
      mysql: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [0]],
    },
    {
      options: { amount: '5.00' },
      sqlite: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [500]],
      pg: ['select "u"."id" from "users" as "u" where ("cb"."id" is not null or coalesce("q"."qualifying_minor", 0) > $1)', [500]],
      mysql: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [500]],
    },
    {
      options: { amount: 12 },
      sqlite: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [1200]],
      pg: ['select "u"."id" from "users" as "u" where ("cb"."id" is not null or coalesce("q"."qualifying_minor", 0) > $1)', [1200]],
      mysql: ['select `u`.`id` from `users` as `u` where (`cb`.`id` is not null or coalesce(`q`.`qualifying_minor`, 0) > ?)', [1200]],
    },
  ],
  invalid: [
    { options: { amount: '5,00' }, message: /\/rules\/0\/with\/amount "amount" must be a decimal amount in major units with a "\." for the decimals, like "5\.00"/ },
    { options: { amount: '5.005' }, message: /\/rules\/0\/with "5\.005" has more decimals than USD allows \(2\)/ },
    { options: { amount: -1 }, message: /\/rules\/0\/with\/amount "amount" must be >= 0/ },
    { options: { amount: true }, message: /\/rules\/0\/with\/amount "amount" must be of type string or number/ },
  ],
  data: [
    {
      name: 'qualifying balance equal to the threshold is not exported, one cent above is',
      options: { amount: '5.00' },
      users: [
        { id: 1, primaryId: 'equal', fines: [{ balance: 300 }, { balance: 200 }] },
        { id: 2, primaryId: 'above', fines: [{ balance: 300 }, { balance: 201 }] },
      ],
      exported: ['above'],
    },
    {
      name: 'credits reduce the qualifying balance; CLOSED rows do not count',
      options: { amount: '0' },
      users: [
        { id: 1, primaryId: 'credited', fines: [{ balance: 500 }, { balance: -500 }] },
        { id: 2, primaryId: 'closed', fines: [{ balance: 500, status: 'CLOSED' }] },
        { id: 3, primaryId: 'net-positive', fines: [{ balance: 501 }, { balance: -500 }] },
      ],
      exported: ['net-positive'],
    },
    {
      name: 'a counting block exports a user whatever the balance',
      options: { amount: '1000' },
      users: [{ id: 1, primaryId: 'blocked', blocks: [{}], fines: [{ balance: -100 }] }],
      exported: ['blocked'],
    },
  ],
});
