import { DURATION_PATTERN, RATE_PATTERN, SIZE_PATTERN } from '../config/units.js'
import { DETECTOR_NAMES } from '../mask/detectors.js'


const strings = { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } } as const
const kinds = { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['device', 'service', 'agent', 'human'] } } as const
const who = {
  type: 'object', additionalProperties: false, minProperties: 1,
  description: 'all listed conditions must hold: one of the groups, one of the kinds, one of the subs',
  properties: { groups: strings, kinds, subs: strings },
} as const

/**
 * JSON Schema of one policy file (SPEC §5). Published as policies/policy.schema.json for
 * editors; `masks` belongs to the masking stage and is only checked to be a list here.
 */
export const policySchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://edgewarden.dev/schema/policy.json',
  title: 'edgewarden policy file',
  type: 'object',
  additionalProperties: false,
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'effect', 'actions'],
        properties: {
          id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description: 'unique across all files; named in every journal decision' },
          description: { type: 'string' },
          mode: { enum: ['enforce', 'monitor'], description: "monitor: what this rule would refuse or hold is journaled (would_deny / would_hold) and the packet proceeds" },
          effect: { enum: ['allow', 'deny'], description: 'deny overrides allow; nothing matched → deny' },
          actions: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['publish', 'subscribe', 'connect'] } },
          topics: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1, maxLength: 4096 }, description: "MQTT filters with + and #; placeholders ${sub} ${client_id} ${claims.NAME}" },
          exact: { type: 'boolean', description: 'subscribe: compare the subscription filter to these filters literally (e.g. deny exactly "#")' },
          who,
          qos: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [0, 1, 2] }, description: 'publish: allowed QoS; subscribe: max granted QoS' },
          retain: { type: 'boolean', description: 'publish: may the retain flag be set' },
          maxPayloadBytes: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: SIZE_PATTERN }] },
          rate: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'string', pattern: RATE_PATTERN }], description: 'per client token bucket, e.g. 20/s (burst = one second worth, at least 1)' },
          payload: {
            type: 'object', additionalProperties: false, minProperties: 1,
            properties: {
              detectors: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...DETECTOR_NAMES] } },
              matches: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }], description: 'regular expression source(s); /source/flags form for flags' },
            },
          },
          approval: {
            type: 'object', additionalProperties: false, required: ['approvers'],
            properties: {
              approvers: who,
              quorum: { type: 'integer', minimum: 1, default: 1 },
              ttl: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'string', pattern: DURATION_PATTERN }], default: '15m' },
              selfApproval: { type: 'boolean', default: false },
            },
          },
        },
      },
    },
    masks: { type: 'array', description: 'payload masks (validated by the masking stage)' },
  },
} as const
