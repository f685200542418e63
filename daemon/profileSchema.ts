import type { JsonSchema } from './ruleApi';
import type { Registry } from './registry';
import { sources } from './sources';
import { signingSchema } from './signing/options';

export const FILE_NAME_PLACEHOLDERS = ['profile', 'runId', 'date'] as const;
export const DEFAULT_FILE_NAME = 'user-blocks-{runId}.xml';

/**
 * The profile JSON Schema, composed from the fixed profile fields and each rule's and
 * transport's own option schema: `rules[i].with` is checked against the schema of the rule
 * `rules[i].rule` names, `delivery` against the schema of its `transport`.
 */
export function composeProfileSchema(registry: Registry): JsonSchema {
  const ruleIds = [...registry.rules.keys()];
  const transportIds = [...registry.transports.keys()];
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'urn:sis-block-export:profile:1',
    title: 'sis-block-export profile',
    type: 'object',
    additionalProperties: false,
    required: ['id', 'currency', 'delivery'],
    properties: {
      id: {
        type: 'string',
        pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
        maxLength: 64,
        patternHint: 'must be lower-case letters, digits and single hyphens, like "main-campus"',
        description: 'Unique profile id; part of every run id.',
      },
      description: { type: 'string', description: 'Free text for people.' },
      schedule: { type: 'string', minLength: 1, description: 'Cron expression, 5 fields or 6 with seconds first. Optional for CLI-only profiles.' },
      timezone: { type: 'string', minLength: 1, default: 'UTC', description: 'IANA time zone of the schedule.' },
      database: { type: 'string', minLength: 1, description: "Source database URL; default: the config's `database`." },
      source: { enum: [...sources.keys()], default: 'native', description: 'Schema of the source database: the library system whose tables are read.' },
      currency: { type: 'string', pattern: '^[A-Z]{3}$', patternHint: 'must be an ISO 4217 code like "USD"', description: 'ISO 4217 currency of the amounts.' },
      rules: {
        type: 'array',
        default: [],
        description: 'Selection rules, applied together.',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['rule'],
          properties: {
            rule: { enum: ruleIds, description: 'Rule id.' },
            with: { type: 'object', description: "The rule's options." },
          },
          allOf: [...registry.rules.values()].map((rule) => ({
            if: { properties: { rule: { const: rule.id } }, required: ['rule'] },
            then: { properties: { with: { ...rule.schema, default: {} } } },
          })),
        },
      },
      output: {
        type: 'object',
        additionalProperties: false,
        default: {},
        properties: {
          fileName: {
            type: 'string',
            default: DEFAULT_FILE_NAME,
            pattern: '^(?!\\.)(?!.*\\.\\.)[A-Za-z0-9_.{}-]+$',
            maxLength: 200,
            patternHint: 'must be a plain file name: letters, digits, ".", "_", "-" and placeholders {profile}, {runId}, {date}; no "/", no "..", not starting with "."',
            description: 'Name of the export file; placeholders {profile}, {runId}, {date} (run date, YYYYMMDD, UTC).',
          },
          signing: signingSchema,
        },
      },
      delivery: {
        type: 'object',
        required: ['transport'],
        properties: { transport: { enum: transportIds, description: 'Transport id.' } },
        allOf: [...registry.transports.values()].map((transport) => ({
          if: { properties: { transport: { const: transport.id } }, required: ['transport'] },
          then: transport.schema,
        })),
      },
    },
  };
}
