/**
 * Exponential backoff with full jitter between `minMs` and a ceiling that doubles per
 * failed attempt up to `maxMs`. Jitter matters for a fleet: after a cloud outage every
 * gateway would otherwise reconnect in the same instant.
 */
export class Backoff {
  #attempt = 0
  constructor(readonly minMs: number, readonly maxMs: number, private readonly random: () => number = Math.random) {
    if (maxMs < minMs) this.maxMs = minMs
  }

  /** attempts since the last reset() */
  get attempt(): number { return this.#attempt }

  /** The delay before the next attempt, in [minMs, min(maxMs, minMs·2^(attempt+1))]. */
  next(): number {
    // 2^31 is far past any maxMs; the cap keeps the power finite
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.#attempt + 1, 31))
    this.#attempt++
    return Math.round(this.minMs + this.random() * (ceiling - this.minMs))
  }

  reset(): void { this.#attempt = 0 }
}
