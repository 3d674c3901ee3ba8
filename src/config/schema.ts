import { SIZE_PATTERN, DURATION_PATTERN, RATE_PATTERN } from './units.js'

/**
 * JSON Schema of edgewarden.yaml — the one source of truth for keys and defaults.
 * `x-unit` marks values given in human units; they are normalized after validation
 * (bytes → number, duration → milliseconds, rate → events per second).
 * `x-secret` marks values that become `Secret`s.
 */
const size = (def: string | number) => ({ type: ['integer', 'string'], pattern: SIZE_PATTERN, minimum: 0, default: def, 'x-unit': 'bytes' })
const duration = (def?: string | number) => ({ type: ['number', 'string'], pattern: DURATION_PATTERN, minimum: 0, ...(def === undefined ? {} : { default: def }), 'x-unit': 'ms' })
const rate = (def?: string | number) => ({ type: ['number', 'string'], pattern: RATE_PATTERN, minimum: 0, ...(def === undefined ? {} : { default: def }), 'x-unit': 'rate' })
const secret = { type: 'string', minLength: 1, 'x-secret': true }
const port = { type: 'integer', minimum: 0, maximum: 65535 }
const str = { type: 'string', minLength: 1 }
/** who holds an admin role: any listed group, sub or kind */
const principals = (groups: string[]) => ({
  type: 'object', additionalProperties: false, default: { groups },
  properties: {
    groups: { type: 'array', items: str },
    subs: { type: 'array', items: str },
    kinds: { type: 'array', items: { enum: ['device', 'service', 'agent', 'human'] } },
  },
})

const listener = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { enum: ['mqtt', 'mqtts', 'ws', 'wss'] },
    host: { type: 'string', default: '0.0.0.0' },
    port,
    path: { type: 'string', pattern: '^/', default: '/mqtt' },
    cert: str,
    key: str,
    ca: str,
    passphrase: secret,
    requestCert: { type: 'boolean', default: false },
    /** with requestCert: refuse TLS clients without a certificate signed by `ca` */
    rejectUnauthorized: { type: 'boolean', default: true },
  },
  allOf: [
    { if: { required: ['type'], properties: { type: { enum: ['mqtts', 'wss'] } } }, then: { required: ['cert', 'key'] } },
  ],
}

export const configSchema = {
  $id: 'https://edgewarden.dev/schema/config.json',
  type: 'object',
  additionalProperties: false,
  properties: {
    gateway: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'gw-01' },
        fleet: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$', default: 'default' },
        dataDir: { type: 'string', minLength: 1, default: './data' },
      },
    },
    log: {
      type: 'object', additionalProperties: false, default: {},
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' } },
    },
    listeners: {
      type: 'array', minItems: 1, items: listener,
      default: [{ type: 'mqtt', port: 1883 }, { type: 'ws', port: 8080, path: '/mqtt' }],
    },
    auth: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        jwt: {
          type: 'object', additionalProperties: false, default: {},
          properties: {
            issuer: str,
            audience: { oneOf: [str, { type: 'array', items: str, minItems: 1 }] },
            algorithms: {
              type: 'array', minItems: 1, uniqueItems: true,
              items: { enum: ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA', 'HS256', 'HS384', 'HS512'] },
              default: ['ES256', 'RS256', 'EdDSA'],
            },
            jwksFile: str,
            jwksUrl: { type: 'string', pattern: '^https?://' },
            /** seconds between JWKS refreshes caused by an unknown kid */
            jwksCooldownSec: { type: 'number', minimum: 0, default: 30 },
            /** seconds a fetched JWKS is used before it is fetched again */
            jwksMaxAgeSec: { type: 'number', minimum: 1, default: 600 },
            publicKey: str,
            secret,
            clockToleranceSec: { type: 'number', minimum: 0, maximum: 3600, default: 30 },
            requireExp: { type: 'boolean', default: true },
            clientIdClaim: { type: 'string', minLength: 1, default: 'client_id' },
            clientIdBinding: { enum: ['strict', 'none'], default: 'strict' },
            groupsClaim: { type: 'string', minLength: 1, default: 'groups' },
            kindClaim: { type: 'string', minLength: 1, default: 'kind' },
            disconnectOnExpiry: { type: 'boolean', default: true },
            /** verified tokens remembered (by hash, until exp) so reconnects skip the signature check */
            tokenCacheSize: { type: 'integer', minimum: 0, default: 10000 },
            maxTokenBytes: { type: 'integer', minimum: 256, maximum: 65536, default: 8192 },
          },
        },
      },
    },
    policies: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        dir: { type: 'string', minLength: 1, default: './policies' },
        watch: { type: 'boolean', default: true },
        mode: { enum: ['enforce', 'monitor'], default: 'enforce' },
        /** a refused publish: acknowledged and dropped (MQTT 3.1.1 has no negative PUBACK), or the connection closed */
        deniedPublish: { enum: ['ack', 'disconnect'], default: 'ack' },
      },
    },
    /** who is on the site and what they do (src/inventory), aggregated in memory, flushed to LMDB */
    inventory: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
        flushMs: { type: 'integer', minimum: 50, maximum: 60000, default: 1000 },
        /** distinct topic filters kept per entry and direction before they compact to `+` wildcards */
        maxTopics: { type: 'integer', minimum: 4, maximum: 4096, default: 64 },
        /** entries (identities + clientIds) kept in memory; the rest stay in LMDB and are read back on demand */
        cacheEntries: { type: 'integer', minimum: 16, default: 2048 },
        /** an identity first seen less than this many hours ago is flagged `new_identity` */
        newIdentityHours: { type: 'number', minimum: 0, default: 24 },
        /** one identity from more than this many clientIds is flagged */
        maxClientIds: { type: 'integer', minimum: 1, default: 1 },
        /** a device publishing this many times above its usual rate is flagged */
        rateFactor: { type: 'number', minimum: 1, default: 10 },
      },
    },
    masking: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        hashKey: secret,
        sealTo: str,
        onParseError: { enum: ['block', 'pass', 'redact-all'], default: 'block' },
        cacheSize: { type: 'integer', minimum: 0, default: 1024 },
      },
    },
    journal: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        maxBytes: size('2GB'),
        retainShippedDays: { type: 'number', minimum: 0, default: 7 },
        onFull: { enum: ['block', 'drop-oldest'], default: 'block' },
        recordPayloads: { enum: ['none', 'masked', 'sealed'], default: 'masked' },
        /** longest a record waits for its group commit */
        commitDelayMs: { type: 'number', minimum: 0, maximum: 1000, default: 2 },
        /** true: a QoS 1 message reaches subscribers only once its record is on disk (write-ahead) */
        deliverAfterCommit: { type: 'boolean', default: false },
      },
    },
    upstream: {
      type: 'object', additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^(mqtts?|wss?)://' },
        clientId: str,
        username: str,
        password: secret,
        cert: str,
        key: str,
        ca: str,
        rejectUnauthorized: { type: 'boolean', default: true },
        keepaliveSec: { type: 'integer', minimum: 0, default: 30 },
        reconnect: {
          type: 'object', additionalProperties: false, default: {},
          properties: { minMs: { type: 'integer', minimum: 10, default: 500 }, maxMs: { type: 'integer', minimum: 10, default: 30000 } },
        },
        out: {
          type: 'array', default: [],
          items: {
            type: 'object', additionalProperties: false, required: ['local', 'remote'],
            properties: { local: str, remote: str, qos: { enum: [0, 1], default: 1 }, retain: { type: 'boolean' } },
          },
        },
        in: {
          type: 'array', default: [],
          items: {
            type: 'object', additionalProperties: false, required: ['remote', 'local'],
            properties: { remote: str, local: str, qos: { enum: [0, 1], default: 1 } },
          },
        },
        buffer: {
          type: 'object', additionalProperties: false, default: {},
          properties: {
            maxMessages: { type: 'integer', minimum: 1, default: 1000000 },
            maxBytes: size('512MB'),
            onFull: { enum: ['block', 'drop-oldest'], default: 'drop-oldest' },
            // while the link is up a message is sent first; unacknowledged this long, it is written (0: always written first)
            storeAfterMs: { type: 'integer', minimum: 0, maximum: 60000, default: 100 },
          },
        },
        audit: {
          type: 'object', additionalProperties: false, default: {},
          properties: {
            topic: str,
            batchRecords: { type: 'integer', minimum: 1, maximum: 100000, default: 1000 },
            batchMs: { type: 'integer', minimum: 10, default: 1000 },
          },
        },
      },
    },
    fleet: {
      type: 'object', additionalProperties: false,
      properties: {
        policyTopic: str,
        publicKey: str,
      },
    },
    admin: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
        host: { type: 'string', default: '127.0.0.1' },
        port: { ...port, default: 9080 },
        /** who may list and kick sessions, read the audit API and the policy (any condition suffices) */
        admins: principals(['admins']),
        /** who may create and revoke grants through the admin API (any condition suffices) */
        approvers: principals(['approvers']),
        webhook: {
          type: 'object', additionalProperties: false, required: ['url'],
          properties: { url: { type: 'string', pattern: '^https?://' }, secret, retries: { type: 'integer', minimum: 0, default: 5 } },
        },
      },
    },
    broker: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        persistence: { enum: ['lmdb', 'memory'], default: 'lmdb' },
        maxQueuedPerClient: { type: 'integer', minimum: 1, default: 10000 },
        maxRetained: { type: 'integer', minimum: 1, default: 100000 },
        cluster: {
          type: 'object', additionalProperties: false,
          properties: { redis: { type: 'string', pattern: '^rediss?://', 'x-secret': true } },
        },
      },
    },
    limits: {
      type: 'object', additionalProperties: false, default: {},
      properties: {
        maxConnections: { type: 'integer', minimum: 1, default: 10000 },
        connectTimeoutSec: { type: 'number', minimum: 0.1, default: 10 },
        maxPacketBytes: size('256KB'),
        keepaliveSec: {
          type: 'object', additionalProperties: false, default: {},
          properties: { min: { type: 'integer', minimum: 0, default: 10 }, max: { type: 'integer', minimum: 1, maximum: 65535, default: 1200 } },
        },
        connectRatePerAddress: rate('50/s'),
        maxQueuedMessages: { type: 'integer', minimum: 1, default: 10000 },
        maxQueuedBytes: size('16MB'),
        slowConsumerTimeoutSec: { type: 'number', minimum: 0, default: 30 },
      },
    },
  },
} as const

export { duration as durationSchema, rate as rateSchema, size as sizeSchema }
