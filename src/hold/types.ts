import type { IdentityKind } from '../identity/types.js'

/** Who may approve (SPEC §5 `approval.approvers`): any listed condition suffices. */
export interface ApproverSpec {
  readonly groups?: readonly string[]
  readonly subs?: readonly string[]
  readonly kinds?: readonly IdentityKind[]
}

export interface ApprovalSpec {
  readonly approvers: ApproverSpec
  readonly quorum: number
  readonly ttlMs: number
  readonly selfApproval: boolean
}

/** The one who asks or approves, as far as a hold needs to know. */
export interface Principal {
  readonly sub: string
  readonly clientId?: string
  readonly kind: IdentityKind
  readonly groups: readonly string[]
}

export type HoldState = 'pending' | 'approved' | 'rejected' | 'expired'

/** A publish parked until approved (Envoy-style: the filter chain resumes later). */
export interface HeldMessage {
  readonly id: string
  readonly createdAt: number
  readonly expiresAt: number
  readonly topic: string
  readonly payload: Uint8Array
  readonly qos: 0 | 1 | 2
  readonly retain: boolean
  readonly requester: Principal
  readonly session?: string
  readonly ruleId: string
  readonly approval: ApprovalSpec
  readonly approvals: readonly { readonly sub: string; readonly at: number }[]
  readonly state: HoldState
  readonly decidedBy?: string
  readonly reason?: string
}

export interface Grant {
  readonly id: string
  readonly sub: string
  readonly actions: readonly ('publish' | 'subscribe')[]
  readonly topics: readonly string[]
  readonly createdAt: number
  readonly expiresAt: number
  readonly grantedBy: string
  readonly reason?: string
}

/** Durable parking lot for held publishes and grants; one interface, memory and LMDB stores. */
export interface HoldStore {
  putHold(h: HeldMessage): Promise<void>
  getHold(id: string): HeldMessage | undefined
  deleteHold(id: string): Promise<void>
  listHolds(): HeldMessage[]
  putGrant(g: Grant): Promise<void>
  deleteGrant(id: string): Promise<void>
  listGrants(): Grant[]
  close(): Promise<void>
}
