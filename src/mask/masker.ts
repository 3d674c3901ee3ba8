import type { Identity } from '../identity/types.js'
import type { CompiledMask } from './apply.js'
import type { MaskPlan, ApplyResult } from './plan.js'
import type { MaskCounts } from './types.js'

/** What the publish path does with a payload: the bytes the broker keeps, and the journal facts. */
export type PublishMasking =
  | { readonly ok: true; readonly payload: Buffer; readonly masks: readonly string[]; readonly counts: MaskCounts }
  | { readonly ok: false; readonly reason: 'unparseable_payload'; readonly mask: string; readonly detail: string }

interface CacheEntry {
  readonly topic: string
  readonly views: Map<string, ApplyResult>
}

/**
 * Masking as the gateway sees it. Masks without `unmaskedFor` are applied once at publish
 * (the broker, retained store, subscribers, bridge and journal only ever see the result).
 * Masks with `unmaskedFor` leave the raw payload in the broker and are applied at each
 * exit, per view: a view is the set of conditional masks that apply to a viewer, and each
 * (message, view) is computed once — keyed by the payload Buffer, which Aedes shares
 * between the subscribers of one message — in a bounded cache (`masking.cacheSize`).
 */
export class Masker {
  #plan: MaskPlan
  readonly #cacheSize: number
  readonly #cache = new Map<Buffer, CacheEntry>()
  /** payloads that came out of onPublish: their unconditional masks are applied already */
  readonly #published = new WeakSet<Buffer>()

  constructor(plan: MaskPlan, cacheSize: number) {
    this.#plan = plan
    this.#cacheSize = cacheSize
  }

  get plan(): MaskPlan { return this.#plan }

  /** Swaps the plan (policy reload); cached views of the old plan are dropped. */
  setPlan(plan: MaskPlan): void {
    this.#plan = plan
    this.#cache.clear()
  }

  /**
   * Publish path: applies the unconditional masks (→ the payload to store and route) and
   * checks that the conditional ones can read it, computing the fully masked view now (the
   * journal needs it, and most subscribers get it). undefined: no mask applies.
   */
  onPublish(topic: string, payload: Buffer): PublishMasking | undefined {
    const plan = this.#plan
    const masks = plan.match(topic)
    if (masks.length === 0) return undefined
    const conditional = hasConditional(masks)
    // no copy of the mask list per publish when none is conditional (the usual case)
    const stored = plan.apply(conditional ? masks.filter((m) => !m.conditional) : masks, payload)
    if (!stored.ok) return stored
    this.#published.add(stored.payload)
    if (!conditional) return stored
    const view = this.#viewFor(undefined, topic, stored.payload, masks)
    if (!view.ok) return view
    return { ok: true, payload: stored.payload, masks: [...stored.masks, ...view.masks], counts: merge(stored.counts, view.counts) }
  }

  /**
   * Delivery to one subscriber: the payload its view may see (the same Buffer when no mask
   * applies to it), or undefined when the payload cannot be masked and must not be
   * delivered. A payload that did not pass onPublish (published by the gateway itself, the
   * bridge, an approval, or re-read from the retained store) gets the unconditional masks
   * here too; every action is idempotent, so masking twice changes nothing.
   */
  forSubscriber(identity: Identity | undefined, topic: string, payload: Buffer): Buffer | undefined {
    const masks = this.#plan.match(topic)
    if (masks.length === 0) return payload
    const r = this.#viewFor(identity, topic, payload, masks)
    return r.ok ? r.payload : undefined
  }

  /**
   * The view for everyone outside the trust boundary that is not a subscriber (bridge,
   * journal): every mask applied. undefined when it cannot be masked (do not send it).
   */
  maskedView(topic: string, payload: Buffer): Buffer | undefined {
    return this.forSubscriber(undefined, topic, payload)
  }

  #viewFor(identity: Identity | undefined, topic: string, payload: Buffer, masks: readonly CompiledMask[]): ApplyResult | { ok: true; payload: Buffer; masks: readonly string[]; counts: MaskCounts } {
    const fresh = !this.#published.has(payload)
    let key = fresh ? 'u' : 'p'
    let apply: CompiledMask[] | undefined
    for (const m of masks) {
      if (m.conditional && identity && m.unmaskedFor(identity)) { key += '0'; continue }
      if (!m.conditional && !fresh) continue
      key += '1'
      ;(apply ??= []).push(m)
    }
    if (!apply) return { ok: true, payload, masks: NO_IDS, counts: NO_COUNTS }
    return this.#view(topic, payload, key, apply)
  }

  #view(topic: string, payload: Buffer, key: string, masks: readonly CompiledMask[]): ApplyResult {
    if (this.#cacheSize === 0) return this.#plan.apply(masks, payload)
    let e = this.#cache.get(payload)
    if (!e || e.topic !== topic) {
      if (e) this.#cache.delete(payload)
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value as Buffer)
      e = { topic, views: new Map() }
      this.#cache.set(payload, e)
    }
    let r = e.views.get(key)
    if (!r) {
      r = this.#plan.apply(masks, payload)
      e.views.set(key, r)
    }
    return r
  }

  /** cached messages (for tests and metrics) */
  get cached(): number { return this.#cache.size }
}

const NO_IDS: readonly string[] = Object.freeze([])
const NO_COUNTS: MaskCounts = Object.freeze({}) as MaskCounts

function hasConditional(masks: readonly CompiledMask[]): boolean {
  for (const m of masks) if (m.conditional) return true
  return false
}

function merge(a: MaskCounts, b: MaskCounts): MaskCounts {
  const out: MaskCounts = { ...a }
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v
  return out
}
