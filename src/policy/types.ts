import type { Identity } from '../identity/types.js'

export type Action = 'publish' | 'subscribe' | 'connect'

export interface DecisionInput {
  readonly qos?: number
  readonly retain?: boolean
  readonly payload?: Uint8Array
}

export interface Decision {
  readonly effect: 'allow' | 'deny' | 'hold'
  /** id of the deciding rule; absent when nothing matched (default deny) */
  readonly ruleId?: string
  readonly reason?: string
  /** subscribe: the highest QoS granted */
  readonly maxQos?: number
}

/** The compiled policy as the gateway sees it: one lookup per packet. */
export interface PolicyEngine {
  decide(identity: Identity, action: Action, topic: string, input: DecisionInput): Decision
  readonly revision: string
}
