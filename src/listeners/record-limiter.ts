import type { Journal, JournalEntry } from '../journal/types.js'

interface Slot { written: number; suppressed: number; last: JournalEntry }

/**
 * Rate-limited journaling for events a peer can trigger at will (refused sockets, malformed
 * packets): per key (reason + address) the first `burst` records of an interval are written
 * as they come, the rest are counted and written as one record with `count` and
 * `suppressed: true` when the interval ends. A flood costs the journal a few records a second
 * per address; the number of keys is bounded, overflow shares one key.
 */
export class RecordLimiter {
  readonly #slots = new Map<string, Slot>()
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly journal: Journal, private readonly burst = 5, private readonly intervalMs = 1000, private readonly maxKeys = 10_000) {}

  record(key: string, entry: JournalEntry): void {
    let slot = this.#slots.get(key)
    if (!slot) {
      if (this.#slots.size >= this.maxKeys) key = '\0overflow'
      slot = this.#slots.get(key)
      if (!slot) {
        slot = { written: 0, suppressed: 0, last: entry }
        this.#slots.set(key, slot)
      }
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.intervalMs)
      this.#timer.unref()
    }
    if (slot.written < this.burst) {
      slot.written++
      this.journal.record(entry)
    } else {
      slot.suppressed++
      slot.last = entry
    }
  }

  /** Writes the counts of suppressed records and starts a new interval. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    for (const slot of this.#slots.values()) {
      if (slot.suppressed > 0) this.journal.record({ ...slot.last, count: slot.suppressed, suppressed: true })
    }
    this.#slots.clear()
  }
}
