import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Journal } from '../journal/types.js'
import { matchTopic } from '../bridge/topic.js'
import type { Grant, HoldStore, Principal } from './types.js'

export interface GrantRequest {
  readonly sub: string
  readonly actions: readonly ('publish' | 'subscribe')[]
  readonly topics: readonly string[]
  readonly ttlMs: number
  readonly reason?: string
}

/**
 * Time-bound allows given by an approver to one identity. They widen default deny only:
 * an explicit deny rule still wins. Kept in memory per sub for the per-packet lookup,
 * persisted in LMDB, journaled, and dropped at expiry (onExpire lets the gateway remove
 * live subscriptions that depended on one).
 */
export class Grants {
  #bySub = new Map<string, Grant[]>()
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly store: HoldStore, private readonly journal: Journal, private readonly clock: Clock, private readonly onExpire?: (g: Grant) => void) {
    this.#index()
  }

  start(sweepMs = 1000): void {
    this.#timer = setInterval(() => void this.sweep(), sweepMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
  }

  list(): Grant[] {
    return this.store.listGrants()
  }

  async grant(r: GrantRequest, by: Principal): Promise<Grant> {
    const now = this.clock.now()
    const g: Grant = { id: randomUUID(), sub: r.sub, actions: [...r.actions], topics: [...r.topics], createdAt: now, expiresAt: now + r.ttlMs, grantedBy: by.sub, reason: r.reason?.slice(0, 500) }
    await this.store.putGrant(g)
    this.#index()
    await this.journal.append({ type: 'grant', grantId: g.id, sub: g.sub, actions: g.actions, topics: g.topics, expiresAt: g.expiresAt, grantedBy: by.sub, reason: g.reason })
    return g
  }

  async revoke(id: string, by: Principal): Promise<boolean> {
    const g = this.store.listGrants().find((x) => x.id === id)
    if (!g) return false
    await this.store.deleteGrant(id)
    this.#index()
    await this.journal.append({ type: 'grant', grantId: id, sub: g.sub, reason: 'revoked', revokedBy: by.sub })
    this.onExpire?.(g)
    return true
  }

  /** The live grant allowing this, if any. */
  allows(sub: string, action: 'publish' | 'subscribe', topic: string): Grant | undefined {
    const list = this.#bySub.get(sub)
    if (!list) return undefined
    const now = this.clock.now()
    return list.find((g) => g.expiresAt > now && g.actions.includes(action) && g.topics.some((f) => matchTopic(f, topic) || f === topic))
  }

  async sweep(): Promise<void> {
    const now = this.clock.now()
    for (const g of this.store.listGrants()) {
      if (g.expiresAt > now) continue
      await this.store.deleteGrant(g.id)
      this.#index()
      await this.journal.append({ type: 'grant', grantId: g.id, sub: g.sub, reason: 'expired' })
      this.onExpire?.(g)
    }
  }

  #index(): void {
    const m = new Map<string, Grant[]>()
    for (const g of this.store.listGrants()) {
      const l = m.get(g.sub) ?? []
      l.push(g)
      m.set(g.sub, l)
    }
    this.#bySub = m
  }
}
