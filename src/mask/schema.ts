import { DETECTOR_NAMES } from './detectors.js'

const strings = { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } } as const

/** JSON Schema of one `masks:` entry in a policy file (SPEC §5); the policy schema only checks `masks` is a list. */
export const maskSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'topics'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', description: 'unique across all files; listed in journal records of masked messages' },
    description: { type: 'string' },
    topics: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1, maxLength: 4096 }, description: 'MQTT filters (+ and #) the mask applies to' },
    format: { enum: ['json', 'msgpack', 'text', 'auto'], default: 'auto' },
    fields: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path', 'action'],
        properties: {
          path: { type: 'string', minLength: 1, maxLength: 1024 },
          action: { enum: ['redact', 'hash', 'last4', 'round', 'drop', 'replace'] },
          digits: { type: 'integer', minimum: 0, maximum: 15 },
          value: {},
        },
      },
    },
    detectors: { type: 'array', uniqueItems: true, default: [], items: { enum: [...DETECTOR_NAMES] } },
    unmaskedFor: {
      type: 'object', additionalProperties: false, minProperties: 1,
      description: 'subscribers receiving the raw payload: one of the groups, one of the kinds or one of the subs',
      properties: { groups: strings, kinds: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['device', 'service', 'agent', 'human'] } }, subs: strings },
    },
    onParseError: { enum: ['block', 'pass', 'redact-all'] },
  },
} as const
