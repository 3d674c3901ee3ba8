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

/** What one session did since the last flush. */
export class SessionCounts {
  readonly pub = new Map<string, TopicStat>()
  readonly sub = new Map<string, TopicStat>()
  readonly formats = [0, 0, 0, 0]
  readonly effects = [0, 0, 0, 0, 0, 0]
  readonly samples: Uint8Array[] = []
  published = 0
}

/**
 * One per session: counts what the session does since the last flush. The publish path
 * only bumps counters in a Map keyed by topic; entries, compaction, flags and LMDB writes
 * happen at flush (src/inventory/inventory.ts). The counters are allocated on the session's
 * first publish, subscribe or decision: an idle connection holds none of them.
 */
export class SessionTracker {
  counts: SessionCounts | undefined
  pending = false
  /** publishes seen, for sampling payloads: the first 16, then one in 64 */
  #seen = 0
  /** set once this identity is flagged for agent traffic: no more sampling */
  agentDone = false

  constructor(readonly sink: TrackerSink, readonly identity: Identity, readonly session: string) {}

  publish(topic: string, payload: Uint8Array, effect: EffectIndex): void {
    const c = (this.counts ??= new SessionCounts())
    let s = c.pub.get(topic)
    if (s === undefined) {
      if (c.pub.size >= PENDING_MAX) this.sink.overflow(this)
      s = { count: 0, bytes: 0 }
      c.pub.set(topic, s)
    }
    s.count++
    s.bytes += payload.length
    c.formats[formatOf(payload)]!++
    c.effects[effect]!++
    c.published++
    const n = this.#seen++
    if (!this.agentDone && (n < 16 || (n & 63) === 0) && c.samples.length < SAMPLES_MAX) c.samples.push(payload)
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  subscribe(filter: string, effect: EffectIndex): void {
    const c = (this.counts ??= new SessionCounts())
    let s = c.sub.get(filter)
    if (s === undefined) {
      if (c.sub.size >= PENDING_MAX) this.sink.overflow(this)
      s = { count: 0, bytes: 0 }
      c.sub.set(filter, s)
    }
    s.count++
    c.effects[effect]!++
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  /** a decision that does not come with a publish or subscribe of its own (would_*) */
  count(effect: EffectIndex): void {
    (this.counts ??= new SessionCounts()).effects[effect]!++
    if (!this.pending) { this.pending = true; this.sink.dirty(this) }
  }

  /** after a merge: counters zeroed, kept for the next window (a session that counted once likely counts again) */
  reset(): void {
    const c = this.counts
    this.pending = false
    if (!c) return
    c.pub.clear()
    c.sub.clear()
    c.formats.fill(0)
    c.effects.fill(0)
    c.samples.length = 0
    c.published = 0
  }
}
