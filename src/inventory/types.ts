/** What the inventory keeps per identity (`sub`) and per MQTT clientId (SPEC §9). */
export type EntryType = 'identity' | 'client'

export const FORMATS = ['json', 'msgpack', 'text', 'binary'] as const
export type PayloadFormat = (typeof FORMATS)[number]

export const EFFECTS = ['allow', 'deny', 'hold', 'would_deny', 'would_hold', 'would_mask'] as const
export type InventoryEffect = (typeof EFFECTS)[number]

export const FLAG_NAMES = ['new_identity', 'client_id_shared', 'many_client_ids', 'foreign_commands', 'rate_spike', 'agent_traffic'] as const
export type FlagName = (typeof FLAG_NAMES)[number]

export interface TopicStat {
  count: number
  bytes: number
}

export interface FlagState {
  readonly at: number
  readonly detail: string
  acked?: { readonly by: string; readonly at: number }
}

/** One inventory entry, in memory (Maps) — stored as plain arrays by store.ts. */
export interface InventoryEntry {
  readonly type: EntryType
  readonly id: string
  kind: string
  groups: readonly string[]
  firstSeen: number
  lastSeen: number
  connects: number
  /** listener names seen (bounded) */
  listeners: string[]
  /** remote addresses seen, most recent last (bounded) */
  remotes: string[]
  /** identity: the clientIds it used; client: the identities that used it (bounded) */
  related: string[]
  /** publish topics compacted to filters, with counts and bytes */
  published: Map<string, TopicStat>
  /** subscription filters (compacted the same way), with counts */
  subscribed: Map<string, TopicStat>
  formats: Record<PayloadFormat, number>
  decisions: Record<InventoryEffect, number>
  /** publishes per second, slow moving average over flush windows (rate_spike baseline) */
  rateAvg: number
  rateWindows: number
  flags: Map<FlagName, FlagState>
}

/** The JSON view (CLI --json, GET /api/inventory). */
export interface InventoryView {
  readonly type: EntryType
  readonly id: string
  readonly kind: string
  readonly groups: readonly string[]
  readonly firstSeen: string
  readonly lastSeen: string
  readonly connects: number
  readonly listeners: readonly string[]
  readonly remotes: readonly string[]
  readonly related: readonly string[]
  readonly published: readonly { filter: string; count: number; bytes: number }[]
  readonly subscribed: readonly { filter: string; count: number }[]
  readonly formats: Readonly<Record<PayloadFormat, number>>
  readonly decisions: Readonly<Record<InventoryEffect, number>>
  readonly flags: readonly { flag: FlagName; at: string; detail: string; acked?: { by: string; at: string } }[]
}
