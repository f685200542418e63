import fineAge from '../../rules/fine-age';
import { testRule } from '../helpers/ruleTester';

const NOW = new Date('2026-12-04T02:00:00Z');

testRule(fineAge, {
  sql: [
    {
      options: {},
      sqlite: ["select `f`.`user_id` from `fines_fees` as `f` where strftime('%Y-%m-%dT%H:%M:%fZ', `f`.`created_at`) <= ?", ['2026-11-04T02:00:00.000Z']],
      pg: ['select "f"."user_id" from "fines_fees" as "f" where "f"."created_at" <= $1', [new Date('2026-11-04T02:00:00Z')]],
      mysql: ['select `f`.`user_id` from `fines_fees` as `f` where `f`.`created_at` <= ?', [new Date('2026-11-04T02:00:00Z')]],
    },
    {
      options: { days: 0 },
      sqlite: ['select `f`.`user_id` from `fines_fees` as `f`', []],
      pg: ['select "f"."user_id" from "fines_fees" as "f"', []],
      mysql: ['select `f`.`user_id` from `fines_fees` as `f`', []],
    },
    {
      options: { days: 7 },
      sqlite: ["select `f`.`user_id` from `fines_fees` as `f` where strftime('%Y-%m-%dT%H:%M:%fZ', `f`.`created_at`) <= ?", ['2026-11-27T02:00:00.000Z']],
      pg: ['select "f"."user_id" from "fines_fees" as "f" where "f"."created_at" <= $1', [new Date('2026-11-27T02:00:00Z')]],
      mysql: ['select `f`.`user_id` from `fines_fees` as `f` where `f`.`created_at` <= ?', [new Date('2026-11-27T02:00:00Z')]],
    },
  ],
  invalid: [
    { options: { days: 'thirty' }, message: /\/rules\/0\/with\/days "days" must be of type integer/ },
    { options: { days: -1 }, message: /\/rules\/0\/with\/days "days" must be >= 0/ },
    { options: { days: 1.5 }, message: /\/rules\/0\/with\/days "days" must be of type integer/ },
  ],
  data: [
    {
      name: 'days 30: exactly 30 days old counts, one second younger does not',
      options: { days: 30 },
      now: NOW,
      users: [
        { id: 1, primaryId: 'old', fines: [{ balance: 100, created: '2026-11-04T02:00:00Z' }] },
        { id: 2, primaryId: 'young', fines: [{ balance: 100, created: '2026-11-04T02:00:01Z' }] },
        { id: 3, primaryId: 'sqlite-form', fines: [{ balance: 100, created: '2026-11-04 02:00:00' }] },
        { id: 4, primaryId: 'sqlite-form-young', fines: [{ balance: 100, created: '2026-11-04 02:00:01' }] },
      ],
      exported: ['old', 'sqlite-form'],
    },
    {
      name: 'days 0 counts every active fine, even one created now',
      options: { days: 0 },
      now: NOW,
      users: [{ id: 1, primaryId: 'fresh', fines: [{ balance: 1, created: '2026-12-04T02:00:00Z' }] }],
      exported: ['fresh'],
    },
    {
      name: 'a young fine does not count, but still shows in the active balance of an exported user',
      options: { days: 30 },
      now: NOW,
      users: [{ id: 1, primaryId: 'blocked', blocks: [{}], fines: [{ balance: 999, created: '2026-12-01T00:00:00Z' }] }],
      exported: ['blocked'],
    },
  ],
});
