import type { Secret } from './secret.js'

/** The normalized, frozen configuration every stage receives (see schema.ts for meanings). */
export type ListenerType = 'mqtt' | 'mqtts' | 'ws' | 'wss'

export interface ListenerConfig {
  readonly type: ListenerType
  readonly host: string
  readonly port: number
  readonly path: string
  readonly cert?: string
  readonly key?: string
  readonly ca?: string
  readonly passphrase?: Secret
  readonly requestCert: boolean
  readonly rejectUnauthorized: boolean
}

export interface JwtConfig {
  readonly issuer?: string
  readonly audience?: string | readonly string[]
  readonly algorithms: readonly string[]
  readonly jwksFile?: string
  readonly jwksUrl?: string
  readonly jwksCooldownSec: number
  readonly jwksMaxAgeSec: number
  readonly publicKey?: string
  readonly secret?: Secret
  readonly clockToleranceSec: number
  readonly requireExp: boolean
  readonly clientIdClaim: string
  readonly clientIdBinding: 'strict' | 'none'
  readonly groupsClaim: string
  readonly kindClaim: string
  readonly disconnectOnExpiry: boolean
  readonly tokenCacheSize: number
  readonly maxTokenBytes: number
}

export interface UpstreamConfig {
  readonly url: string
  readonly clientId?: string
  readonly username?: string
  readonly password?: Secret
  readonly cert?: string
  readonly key?: string
  readonly ca?: string
  readonly rejectUnauthorized: boolean
  readonly keepaliveSec: number
  readonly reconnect: { readonly minMs: number; readonly maxMs: number }
  readonly out: readonly { readonly local: string; readonly remote: string; readonly qos: 0 | 1; readonly retain?: boolean }[]
  readonly in: readonly { readonly remote: string; readonly local: string; readonly qos: 0 | 1 }[]
  readonly buffer: { readonly maxMessages: number; readonly maxBytes: number; readonly onFull: 'block' | 'drop-oldest'; readonly storeAfterMs: number }
  readonly audit: { readonly topic?: string; readonly batchRecords: number; readonly batchMs: number }
}

export interface Config {
  readonly gateway: { readonly id: string; readonly fleet: string; readonly dataDir: string }
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' }
  readonly listeners: readonly ListenerConfig[]
  readonly auth: { readonly jwt: JwtConfig }
  readonly policies: { readonly dir: string; readonly watch: boolean; readonly mode: 'enforce' | 'monitor'; readonly deniedPublish: 'ack' | 'disconnect' }
  readonly inventory: { readonly enabled: boolean; readonly flushMs: number; readonly maxTopics: number; readonly cacheEntries: number; readonly newIdentityHours: number; readonly maxClientIds: number; readonly rateFactor: number }
  readonly masking: { readonly hashKey?: Secret; readonly sealTo?: string; readonly onParseError: 'block' | 'pass' | 'redact-all'; readonly cacheSize: number }
  readonly journal: {
    readonly maxBytes: number
    readonly retainShippedDays: number
    readonly onFull: 'block' | 'drop-oldest'
    readonly recordPayloads: 'none' | 'masked' | 'sealed'
    readonly commitDelayMs: number
    readonly deliverAfterCommit: boolean
  }
  readonly upstream?: UpstreamConfig
  readonly fleet?: { readonly policyTopic?: string; readonly publicKey?: string }
  readonly admin: {
    readonly enabled: boolean
    readonly host: string
    readonly port: number
    readonly admins: { readonly groups?: readonly string[]; readonly subs?: readonly string[]; readonly kinds?: readonly ('device' | 'service' | 'agent' | 'human')[] }
    readonly approvers: { readonly groups?: readonly string[]; readonly subs?: readonly string[]; readonly kinds?: readonly ('device' | 'service' | 'agent' | 'human')[] }
    readonly webhook?: { readonly url: string; readonly secret?: Secret; readonly retries: number }
  }
  readonly broker: {
    readonly persistence: 'lmdb' | 'memory'
    readonly maxQueuedPerClient: number
    readonly maxRetained: number
    readonly cluster?: { readonly redis?: Secret }
  }
  readonly limits: {
    readonly maxConnections: number
    readonly connectTimeoutSec: number
    readonly maxPacketBytes: number
    readonly keepaliveSec: { readonly min: number; readonly max: number }
    readonly connectRatePerAddress: number
    readonly maxQueuedMessages: number
    readonly maxQueuedBytes: number
    readonly slowConsumerTimeoutSec: number
  }
  /** where the config came from: a file path, or 'defaults' */
  readonly source: string
}

/** Deep-partial input accepted by createGateway() and loadConfig({ overrides }). */
export type ConfigInput = { [K in keyof Config]?: unknown }
