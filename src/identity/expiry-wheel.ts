import type { Clock } from '../clock.js'

const OVERDUE = -1

/**
 * Things due at a time (sessions whose token expires), swept by one interval timer instead
 * of a Timeout per connection: adding or removing is a Set operation, an idle connection
 * holds no timer. Items are handed to `onDue` at most `tickMs` after their time, never before.
 */
export class ExpiryWheel<T> {
  readonly #slots = new Map<number, Set<T>>()
  #size = 0
  /** every slot up to this one has been handed out */
  #swept: number
  #timer: NodeJS.Timeout | undefined

  constructor(private readonly clock: Clock, private readonly onDue: (item: T) => void, private readonly tickMs = 250) {
    this.#swept = Math.floor(clock.now() / tickMs)
  }

  /** Returns the slot, which remove() needs. */
  add(item: T, atMs: number): number {
    // rounded up: never due early; a time already swept goes to the next sweep (slot OVERDUE)
    const ceil = Math.ceil(atMs / this.tickMs)
    const slot = ceil <= this.#swept ? OVERDUE : ceil
    let set = this.#slots.get(slot)
    if (!set) this.#slots.set(slot, (set = new Set()))
    if (!set.has(item)) this.#size++
    set.add(item)
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#sweep(), this.tickMs)
      this.#timer.unref()
    }
    return slot
  }

  remove(item: T, slot: number): void {
    const set = this.#slots.get(slot)
    if (!set?.delete(item)) return
    this.#size--
    if (set.size === 0) this.#slots.delete(slot)
    if (this.#size === 0) this.#stop()
  }

  get size(): number { return this.#size }

  #sweep(): void {
    const now = Math.floor(this.clock.now() / this.tickMs)
    const due: number[] = this.#slots.has(OVERDUE) ? [OVERDUE] : []
    // normally one slot per tick; after a clock jump, only the slots that exist
    if (now <= this.#swept) {
      // the clock stood still or went back: only what was overdue already
    } else if (now - this.#swept <= this.#slots.size) {
      for (let s = this.#swept + 1; s <= now; s++) if (this.#slots.has(s)) due.push(s)
    } else {
      for (const s of this.#slots.keys()) if (s !== OVERDUE && s <= now) due.push(s)
    }
    this.#swept = Math.max(this.#swept, now)
    for (const s of due) {
      const set = this.#slots.get(s)!
      this.#slots.delete(s)
      this.#size -= set.size
      for (const item of set) this.onDue(item)
    }
    if (this.#size === 0) this.#stop()
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  close(): void {
    this.#stop()
    this.#slots.clear()
    this.#size = 0
  }
}
