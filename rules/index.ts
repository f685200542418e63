import type { AnyRule } from '../daemon/ruleApi';
import blockTypes from './block-types';
import excludeInternal from './exclude-internal';
import fineAge from './fine-age';
import matchId from './match-id';
import threshold from './threshold';
import userGroups from './user-groups';

/** The built-in rules, by id, sorted. Site rules are added from the config's `rulesDir`. */
export const builtinRules: ReadonlyMap<string, AnyRule> = new Map<string, AnyRule>([
  ['block-types', blockTypes],
  ['exclude-internal', excludeInternal],
  ['fine-age', fineAge],
  ['match-id', matchId],
  ['threshold', threshold],
  ['user-groups', userGroups],
]);
