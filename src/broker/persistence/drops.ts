import type { Journal } from '../../journal/types.js'

export type DropReason = 'max_queued_per_client' | 'max_retained' | 'subscription_revoked'

interface Pending { readonly clientId?: string; readonly reason: DropReason; readonly topic: string; count: number }

/**
 * Counts messages a broker limit dropped and journals them as `buffer_dropped` records,
 * one per (client, reason) per interval with a `count`: a flood of drops costs the
 * journal one record a second, not one per message.
 */
export class DropCounter {
  readonly #pending = new Map<string, Pending>()
  readonly #totals: Record<DropReason, number> = { max_queued_per_client: 0, max_retained: 0, subscription_revoked: 0 }
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly journal: Journal | undefined, private readonly intervalMs = 1000) {}

  add(reason: DropReason, clientId: string | undefined, topic: string, n = 1): void {
    this.#totals[reason] += n
    const key = clientId === undefined ? reason : reason + '\0' + clientId
    const e = this.#pending.get(key)
    if (e) e.count += n
    else this.#pending.set(key, { clientId, reason, topic, count: n })
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.intervalMs)
      this.#timer.unref()
    }
  }

  /** drops since start, by reason */
  get totals(): Readonly<Record<DropReason, number>> { return this.#totals }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const e of this.#pending.values()) {
      // topic: the first dropped message's topic in this interval, for the operator's "what?"
      this.journal?.record({ type: 'buffer_dropped', store: 'broker', reason: e.reason, clientId: e.clientId, topic: e.topic, count: e.count })
    }
    this.#pending.clear()
  }
}
