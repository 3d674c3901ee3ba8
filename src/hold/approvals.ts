import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import { matchesApprovers } from './principal.js'
import type { ApprovalSpec, HeldMessage, HoldStore, Principal } from './types.js'

export type ApprovalError = 'not_found' | 'not_approver' | 'self_approval' | 'already_approved' | 'not_pending'
export type ApprovalResult = { readonly ok: true; readonly hold: HeldMessage; readonly delivered: boolean } | { readonly ok: false; readonly error: ApprovalError }

/** What the gateway knows when it parks a publish; the queue adds id, times and state. */
export type HoldRequest = Pick<HeldMessage, 'topic' | 'payload' | 'qos' | 'retain' | 'requester' | 'session' | 'ruleId' | 'approval'>

export interface ApprovalsDeps {
  readonly store: HoldStore
  readonly journal: Journal
  readonly clock: Clock
  readonly logger: Logger
  /** publishes an approved message with its original QoS/retain */
  readonly deliver: (h: HeldMessage) => Promise<void>
  /** a hold was created or changed state (pending topic, webhook) */
  readonly notify?: (event: 'held' | 'approved' | 'rejected' | 'expired', h: HeldMessage) => void
  /** held → delivered, seconds */
  readonly observeLatency?: (seconds: number) => void
  readonly sweepMs?: number
}

/**
 * The approval state machine: pending → approved (quorum of distinct eligible approvers,
 * never the requester unless selfApproval) → delivered; pending → rejected | expired.
 * Every transition is durable before it is acted on, and journaled.
 */
export class Approvals {
  #timer: NodeJS.Timeout | undefined
  constructor(private readonly d: ApprovalsDeps) {}

  /** Re-delivers holds approved before a crash, expires overdue ones, starts the sweep. */
  async start(): Promise<void> {
    for (const h of this.d.store.listHolds()) if (h.state === 'approved') await this.#deliver(h)
    await this.sweep()
    this.#timer = setInterval(() => void this.sweep(), this.d.sweepMs ?? 1000)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
  }

  pending(): HeldMessage[] {
    return this.d.store.listHolds().filter((h) => h.state === 'pending')
  }

  get(id: string): HeldMessage | undefined {
    return this.d.store.getHold(id)
  }

  async hold(r: HoldRequest): Promise<HeldMessage> {
    const now = this.d.clock.now()
    const h: HeldMessage = {
      id: randomUUID(), createdAt: now, expiresAt: now + r.approval.ttlMs,
      topic: r.topic, payload: r.payload, qos: r.qos, retain: r.retain,
      requester: r.requester, session: r.session, ruleId: r.ruleId, approval: r.approval,
      approvals: [], state: 'pending',
    }
    await this.d.store.putHold(h)
    await this.d.journal.append({ type: 'held', holdId: h.id, session: r.session, clientId: r.requester.clientId, sub: r.requester.sub, kind: r.requester.kind, topic: r.topic, qos: r.qos, retain: r.retain, bytes: r.payload.length, rule: r.ruleId })
    this.d.notify?.('held', h)
    return h
  }

  /** Why `p` may not approve `h`, or undefined when it may. */
  refusal(h: HeldMessage, p: Principal): ApprovalError | undefined {
    if (h.state !== 'pending') return 'not_pending'
    if (!matchesApprovers(h.approval.approvers, p)) return 'not_approver'
    if (p.sub === h.requester.sub && !h.approval.selfApproval) return 'self_approval'
    if (h.approvals.some((a) => a.sub === p.sub)) return 'already_approved'
    return undefined
  }

  async approve(id: string, p: Principal): Promise<ApprovalResult> {
    const h = this.d.store.getHold(id)
    if (!h) return { ok: false, error: 'not_found' }
    if (h.expiresAt <= this.d.clock.now() && h.state === 'pending') {
      await this.#expire(h)
      return { ok: false, error: 'not_pending' }
    }
    const why = this.refusal(h, p)
    if (why) return { ok: false, error: why }
    const approvals = [...h.approvals, { sub: p.sub, at: this.d.clock.now() }]
    const reached = approvals.length >= h.approval.quorum
    const next: HeldMessage = { ...h, approvals, ...(reached ? { state: 'approved' as const, decidedBy: p.sub } : {}) }
    await this.d.store.putHold(next)
    if (!reached) return { ok: true, hold: next, delivered: false }
    await this.#deliver(next)
    return { ok: true, hold: next, delivered: true }
  }

  async reject(id: string, p: Principal, reason?: string): Promise<ApprovalResult> {
    const h = this.d.store.getHold(id)
    if (!h) return { ok: false, error: 'not_found' }
    if (h.state !== 'pending') return { ok: false, error: 'not_pending' }
    if (!matchesApprovers(h.approval.approvers, p)) return { ok: false, error: 'not_approver' }
    const done: HeldMessage = { ...h, state: 'rejected', decidedBy: p.sub, reason: reason?.slice(0, 500) }
    await this.d.store.deleteHold(h.id)
    await this.d.journal.append({ type: 'rejected', holdId: h.id, session: h.session, clientId: h.requester.clientId, sub: h.requester.sub, topic: h.topic, rule: h.ruleId, approver: p.sub, reason: done.reason })
    this.d.notify?.('rejected', done)
    return { ok: true, hold: done, delivered: false }
  }

  async sweep(): Promise<void> {
    const now = this.d.clock.now()
    for (const h of this.d.store.listHolds()) if (h.state === 'pending' && h.expiresAt <= now) await this.#expire(h)
  }

  async #expire(h: HeldMessage): Promise<void> {
    await this.d.store.deleteHold(h.id)
    await this.d.journal.append({ type: 'hold_expired', holdId: h.id, session: h.session, clientId: h.requester.clientId, sub: h.requester.sub, topic: h.topic, rule: h.ruleId, approvals: h.approvals.length })
    this.d.notify?.('expired', { ...h, state: 'expired' })
  }

  async #deliver(h: HeldMessage): Promise<void> {
    await this.d.deliver(h)
    await this.d.store.deleteHold(h.id)
    await this.d.journal.append({ type: 'approved', holdId: h.id, session: h.session, clientId: h.requester.clientId, sub: h.requester.sub, topic: h.topic, qos: h.qos, retain: h.retain, rule: h.ruleId, approvers: h.approvals.map((a) => a.sub) })
    this.d.observeLatency?.((this.d.clock.now() - h.createdAt) / 1000)
    this.d.notify?.('approved', h)
  }
}
