import type { Journal, JournalEntry } from '../journal/types.js'

interface Group { written: number; perKey: Map<string, number>; suppressed: number; reasons: Map<string, number>; last: JournalEntry }

/**
 * Rate-limited journaling for events a peer can trigger at will (refused sockets, malformed
 * packets). Records are grouped (by type and address): per interval a group writes at most
 * `burst` records of one key (reason) and `groupBurst` in all, as they come; the rest are
 * counted and written as one record per group with `count`, `suppressed: true` and the count
 * per reason when the interval ends. A flood costs the journal a bounded number of records a
 * second per address, and every event is still accounted for. Groups are bounded too.
 */
export class RecordLimiter {
  readonly #groups = new Map<string, Group>()
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly journal: Journal, private readonly burst = 5, private readonly groupBurst = 20, private readonly intervalMs = 1000, private readonly maxGroups = 10_000) {}

  record(group: string, key: string, entry: JournalEntry): void {
    let g = this.#groups.get(group)
    if (!g) {
      if (this.#groups.size >= this.maxGroups) group = '\0overflow'
      g = this.#groups.get(group)
      if (!g) {
        g = { written: 0, perKey: new Map(), suppressed: 0, reasons: new Map(), last: entry }
        this.#groups.set(group, g)
      }
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.intervalMs)
      this.#timer.unref()
    }
    const n = g.perKey.get(key) ?? 0
    if (n < this.burst && g.written < this.groupBurst) {
      g.perKey.set(key, n + 1)
      g.written++
      this.journal.record(entry)
      return
    }
    g.suppressed++
    g.last = entry
    const reason = String(entry.reason ?? key)
    if (g.reasons.size < 32 || g.reasons.has(reason)) g.reasons.set(reason, (g.reasons.get(reason) ?? 0) + 1)
  }

  /** Writes one summary per group that suppressed records, and starts a new interval. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const g of this.#groups.values()) {
      if (g.suppressed === 0) continue
      const reasons = Object.fromEntries(g.reasons)
      const only = g.reasons.size === 1 ? g.reasons.keys().next().value : undefined
      const { type, listener, remote } = g.last
      this.journal.record({ type, listener, remote, reason: only ?? 'various', count: g.suppressed, suppressed: true, reasons })
    }
    this.#groups.clear()
  }
}
