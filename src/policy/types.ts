import type { Identity } from '../identity/types.js'

export type Action = 'publish' | 'subscribe' | 'connect'

export interface DecisionInput {
  readonly qos?: number
  readonly retain?: boolean
  readonly payload?: Uint8Array
}

/** Why a decision went the way it did: stable codes, safe to journal. */
export type DecisionReason =
  | 'rule_allow' | 'rule_deny' | 'no_matching_rule' | 'reserved_topic' | 'no_policy'
  | 'qos_not_allowed' | 'retain_not_allowed' | 'payload_too_large' | 'rate_limited'
  | 'payload_match' | `payload_detector:${string}` | 'approval_required'
  | 'connect_default' | 'connect_not_listed'

/** What the held publish waits for (SPEC §5 `approval`). */
export interface HoldSpec {
  readonly approvers: { readonly groups?: readonly string[]; readonly kinds?: readonly string[]; readonly subs?: readonly string[] }
  readonly quorum: number
  readonly ttlMs: number
  readonly selfApproval: boolean
}

/**
 * A decision is a record, ready for the journal. Decisions are shared frozen objects
 * (precompiled per rule), so deciding allocates nothing; never mutate one.
 */
export interface Decision {
  readonly effect: 'allow' | 'deny' | 'hold'
  /** id of the deciding rule; absent when nothing matched (default deny) */
  readonly ruleId?: string
  readonly reason?: DecisionReason | string
  /** subscribe: the highest QoS granted */
  readonly maxQos?: number
  /** hold: what approval the publish waits for */
  readonly hold?: HoldSpec
  /** set on refusals and holds of a `mode: monitor` rule: journal them as would_*, let the packet through */
  readonly monitor?: true
}

/** The compiled policy as the gateway sees it: one lookup per packet. */
export interface PolicyEngine {
  decide(identity: Identity, action: Action, topic: string, input: DecisionInput): Decision
  readonly revision: string
  /** forget per-client state (rate buckets) when a client disconnects */
  release?(clientId: string): void
}
