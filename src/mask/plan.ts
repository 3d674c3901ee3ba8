import { applyMask, compileMask, REDACTED_ALL, type CompiledMask } from './apply.js'
import { TopicTrie } from './trie.js'
import type { MaskCounts, MaskSpec, OnParseError } from './types.js'

export interface PlanOptions {
  /** HMAC key for `hash` */
  readonly hashKey: Buffer
  /** masking.onParseError, unless a mask sets its own */
  readonly onParseError: OnParseError
}

/** Masks applied to one payload, and what they did (ids and counts, never values). */
export type ApplyResult =
  | { readonly ok: true; readonly payload: Buffer; readonly masks: readonly string[]; readonly counts: MaskCounts }
  | { readonly ok: false; readonly reason: 'unparseable_payload'; readonly mask: string; readonly detail: string }

const NONE: readonly CompiledMask[] = Object.freeze([])
const TOPIC_CACHE = 4096

/**
 * The compiled `masks:` of all policy files: a topic trie from filter to masks, built once;
 * a reload builds a new plan. Lookups per topic are cached (bounded).
 */
export class MaskPlan {
  readonly masks: readonly CompiledMask[]
  readonly #trie = new TopicTrie<CompiledMask>()
  readonly #byTopic = new Map<string, readonly CompiledMask[]>()

  constructor(specs: readonly MaskSpec[], opts: PlanOptions) {
    this.masks = Object.freeze(specs.map((s, i) => compileMask(s, i, opts.hashKey, opts.onParseError)))
    this.masks.forEach((m, i) => {
      for (const t of specs[i]!.topics) this.#trie.add(t, m)
    })
  }

  get empty(): boolean { return this.masks.length === 0 }

  /** Masks that apply to `topic`, in definition order, each once. */
  match(topic: string): readonly CompiledMask[] {
    if (this.masks.length === 0) return NONE
    let r = this.#byTopic.get(topic)
    if (r) return r
    const found = this.#trie.match(topic)
    r = found.length === 0 ? NONE : Object.freeze([...new Set(found)].sort((a, b) => a.index - b.index))
    if (this.#byTopic.size >= TOPIC_CACHE) this.#byTopic.delete(this.#byTopic.keys().next().value as string)
    this.#byTopic.set(topic, r)
    return r
  }

  /**
   * Applies `masks` (a subset of match(topic)) in order. A mask that cannot read the payload
   * acts per its onParseError: block → the whole result is a refusal; pass → skipped;
   * redact-all → the payload becomes `[REDACTED]`.
   */
  apply(masks: readonly CompiledMask[], payload: Buffer): ApplyResult {
    const counts: MaskCounts = {}
    const ids: string[] = []
    let out = payload
    for (const m of masks) {
      const r = applyMask(m, out, counts)
      if (r.ok) {
        out = r.payload
        ids.push(m.id)
        continue
      }
      if (m.onParseError === 'block') return { ok: false, reason: 'unparseable_payload', mask: m.id, detail: r.detail }
      counts[`parse_error_${m.onParseError}`] = (counts[`parse_error_${m.onParseError}`] ?? 0) + 1
      ids.push(m.id)
      if (m.onParseError === 'redact-all') {
        out = REDACTED_ALL
        break
      }
    }
    return { ok: true, payload: out, masks: ids, counts }
  }
}
