import type { Identity } from '../identity/types.js'
import { formatOf } from './sniff.js'
import type { TopicStat } from './types.js'

/** Effect index into EFFECTS: allow, deny, hold, would_deny, would_hold, would_mask. */
export type EffectIndex = 0 | 1 | 2 | 3 | 4 | 5
export const EFFECT_INDEX = { allow: 0, deny: 1, hold: 2, would_deny: 3, would_hold: 4, would_mask: 5 } as const

/** Where a tracker reports that it has something to flush. */
export interface TrackerSink {
  dirty(t: SessionTracker): void
  /** the pending topic map grew past its bound: merge it now (rare) */
  overflow(t: SessionTracker): void
}

const PENDING_MAX = 1024
/** payloads kept per flush window for the agent-traffic check, which runs at flush */
const SAMPLES_MAX = 4

/**
 * One per session: counts what the session does since the last flush. The publish path
 * only bumps counters in a Map keyed by topic; entries, compaction, flags and LMDB writes
 * happen at flush (src/inventory/inventory.ts).
 */
export class SessionTracker {
  readonly pub = new Map<string, TopicStat>()
  readonly sub = new Map<string, TopicStat>()
  readonly formats = [0, 0, 0, 0]
  readonly effects = [0, 0, 0, 0, 0, 0]
  readonly samples: Uint8Array[] = []
  published = 0
  pending = false
  /** publishes seen, for sampling payloads: the first 16, then one in 64 */
  #seen = 0
  /** set once this identity is flagged for agent traffic: no more sampling */
  agentDone = false

  constructor(readonly sink: TrackerSink, readonly identity: Identity, readonly session: string) {}

  publish(topic: string, payload: Uint8Array, effect: EffectIndex): void {
    let s = this.pub.get(topic)
    if (s === undefined) {
      if (this.pub.size >= PENDING_MAX) this.sink.overflow(this)
      s = { count: 0, bytes: 0 }
      this.pub.set(topic, s)
    }
    s.count++
    s.bytes += payload.length
    this.formats[formatOf(payload)]!++
    this.effects[effect]!++
    this.published++
    const n = this.#seen++
    if (!this.agentDone && (n < 16 || (n & 63) === 0) && this.samples.length < SAMPLES_MAX) this.samples.push(payload)
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  subscribe(filter: string, effect: EffectIndex): void {
    let s = this.sub.get(filter)
    if (s === undefined) {
      if (this.sub.size >= PENDING_MAX) this.sink.overflow(this)
      s = { count: 0, bytes: 0 }
      this.sub.set(filter, s)
    }
    s.count++
    this.effects[effect]!++
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  /** a decision that does not come with a publish or subscribe of its own (would_*) */
  count(effect: EffectIndex): void {
    this.effects[effect]!++
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  reset(): void {
    this.pub.clear()
    this.sub.clear()
    this.formats.fill(0)
    this.effects.fill(0)
    this.samples.length = 0
    this.published = 0
    this.pending = false
  }
}
