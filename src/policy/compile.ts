import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import type { Identity } from '../identity/types.js'
import { parseDuration, parseRate, parseSize } from '../config/units.js'
import { isReservedTopic } from './reserved.js'
import { matchTemplate, parseFilter, type Level, type Placeholder } from './filter.js'
import { coverFilter, matchTopic, overlapFilter, TrieNode } from './trie.js'
import { RateLimiter } from './rate.js'
import type { PolicyDocument, RuleSpec, WhoSpec } from './document.js'
import type { Action, Decision, DecisionInput, HoldSpec, PolicyEngine } from './types.js'

/** What content deny rules need from the detector set (src/mask/detectors.ts). */
export interface ContentDetectors {
  firstMatch(text: string): string | undefined
}
export type DetectorCompiler = (names: readonly string[]) => ContentDetectors

export interface CompileOptions {
  readonly clock?: Clock
  readonly detectors?: DetectorCompiler
  readonly maxRateClients?: number
}

interface Who {
  readonly groups?: readonly string[]
  readonly kinds?: readonly string[]
  readonly subs?: readonly string[]
}

interface CompiledRule {
  readonly index: number
  readonly id: string
  readonly deny: boolean
  /** `mode: monitor`: its refusals and holds are reported, not enforced */
  readonly monitor: boolean
  readonly who?: Who
  /** bit i set: QoS i allowed (publish) */
  readonly qosMask: number
  readonly maxQos: number
  readonly retain?: boolean
  readonly maxPayloadBytes: number
  readonly rateSlot: number
  readonly matchers: readonly RegExp[]
  readonly detectors?: ContentDetectors
  readonly hasPayload: boolean
  readonly ok: Decision
  readonly allowed: Decision
  readonly subOk: Decision
  readonly denied: Decision
  readonly qosDenied: Decision
  readonly retainDenied: Decision
  readonly sizeDenied: Decision
  readonly rateDenied: Decision
  readonly matchDenied: Decision
  readonly detectorDenied: Map<string, Decision>
}

interface ExactRule {
  readonly rule: number
  readonly parts: readonly (string | Placeholder)[]
}

/** Per action: one trie of allow filters, one of deny filters, and the literal (`exact`) rules. */
class ActionIndex {
  readonly allow = new TrieNode()
  readonly deny = new TrieNode()
  readonly exactAllow: ExactRule[] = []
  readonly exactDeny: ExactRule[] = []
}

const freeze = (d: Decision): Decision => Object.freeze(d)
const DEFAULT_DENY = freeze({ effect: 'deny', reason: 'no_matching_rule' })
const RESERVED_DENY = freeze({ effect: 'deny', reason: 'reserved_topic' })
const CONNECT_DEFAULT = freeze({ effect: 'allow', reason: 'connect_default' })
const CONNECT_NOT_LISTED = freeze({ effect: 'deny', reason: 'connect_not_listed' })

// scratch buffers: decide() is synchronous and never re-entered, so one set serves all calls
const DENY_HITS: number[] = []
const ALLOW_HITS: number[] = []
const decoder = new TextDecoder()

function sortUnique(a: number[]): void {
  // insertion sort: hit lists are short; Array#sort with a comparator would allocate
  for (let i = 1; i < a.length; i++) {
    const v = a[i]!
    let j = i - 1
    while (j >= 0 && a[j]! > v) { a[j + 1] = a[j]!; j-- }
    a[j + 1] = v
  }
}

function whoMatches(w: Who | undefined, id: Identity): boolean {
  if (w === undefined) return true
  if (w.kinds !== undefined && !w.kinds.includes(id.kind)) return false
  if (w.subs !== undefined && !w.subs.includes(id.sub)) return false
  if (w.groups !== undefined) {
    const g = w.groups
    let any = false
    for (let i = 0; i < g.length && !any; i++) any = id.groups.includes(g[i]!)
    if (!any) return false
  }
  return true
}

/**
 * A monitor-mode deny matched: an enforced refusal or hold still stands (the packet is
 * stopped anyway); otherwise the monitored deny is reported and the packet passes.
 */
function withMonitored(res: Decision, monitored: Decision): Decision {
  return res.effect !== 'allow' && res.monitor !== true ? res : monitored
}

/** Parses `matches`: a regular expression source, or `/source/flags`. */
export function compileMatcher(src: string): RegExp {
  const m = /^\/(.+)\/([a-z]*)$/s.exec(src)
  return m ? new RegExp(m[1]!, m[2]!) : new RegExp(src)
}

function exactParts(levels: readonly Level[]): (string | Placeholder)[] {
  const parts: (string | Placeholder)[] = []
  const add = (p: string | Placeholder) => {
    const last = parts[parts.length - 1]
    if (typeof p === 'string' && typeof last === 'string') parts[parts.length - 1] = last + p
    else parts.push(p)
  }
  levels.forEach((l, i) => {
    if (i > 0) add('/')
    if (l.kind === 'tpl') l.parts.forEach(add)
    else add(l.kind === 'plus' ? '+' : l.kind === 'hash' ? '#' : l.text)
  })
  return parts
}

function compileRule(r: RuleSpec, index: number, rateSlot: number, opts: CompileOptions): CompiledRule {
  const id = r.id
  const monitor = r.mode === 'monitor'
  const d = (effect: Decision['effect'], reason: string, extra: Partial<Decision> = {}): Decision => freeze({ effect, ruleId: id, reason, ...extra, ...(monitor && effect !== 'allow' ? { monitor: true as const } : {}) })
  const qos = r.qos ?? [0, 1, 2]
  const maxQos = Math.max(...qos)
  const hold: HoldSpec | undefined = r.approval && Object.freeze({
    approvers: Object.freeze({ ...r.approval.approvers }),
    quorum: r.approval.quorum ?? 1,
    ttlMs: parseDuration(r.approval.ttl ?? '15m') ?? 900_000,
    selfApproval: r.approval.selfApproval ?? false,
  })
  const matches = r.payload?.matches
  const matchers = matches === undefined ? [] : (typeof matches === 'string' ? [matches] : matches).map(compileMatcher)
  const names = r.payload?.detectors ?? []
  let detectors: ContentDetectors | undefined
  if (names.length > 0) {
    if (!opts.detectors) throw new Error(`rule ${id}: payload.detectors need the detector set, which is not available`)
    detectors = opts.detectors(names)
  }
  const allowed = d('allow', 'rule_allow')
  const who: Who | undefined = r.who && Object.freeze({ groups: r.who.groups, kinds: r.who.kinds, subs: r.who.subs } satisfies WhoSpec)
  return {
    index, id, deny: r.effect === 'deny', monitor, who,
    qosMask: qos.reduce((m, q) => m | (1 << q), 0),
    maxQos,
    retain: r.retain,
    maxPayloadBytes: r.maxPayloadBytes === undefined ? Infinity : parseSize(r.maxPayloadBytes) ?? Infinity,
    rateSlot,
    matchers,
    detectors,
    hasPayload: matchers.length > 0 || detectors !== undefined,
    ok: hold ? d('hold', 'approval_required', { hold }) : allowed,
    allowed,
    subOk: d('allow', 'rule_allow', { maxQos }),
    denied: d('deny', 'rule_deny'),
    qosDenied: d('deny', 'qos_not_allowed'),
    retainDenied: d('deny', 'retain_not_allowed'),
    sizeDenied: d('deny', 'payload_too_large'),
    rateDenied: d('deny', 'rate_limited'),
    matchDenied: d('deny', 'payload_match'),
    detectorDenied: new Map(names.map((n) => [n, d('deny', `payload_detector:${n}`)])),
  }
}

/**
 * An immutable compiled policy: built once per revision, swapped as one reference.
 * decide() walks two tries and returns one of the rule's precompiled frozen decisions.
 */
export class CompiledPolicy implements PolicyEngine {
  readonly revision: string
  readonly document: PolicyDocument
  readonly #rules: CompiledRule[]
  readonly #index: Record<'publish' | 'subscribe', ActionIndex> = { publish: new ActionIndex(), subscribe: new ActionIndex() }
  readonly #connectAllow: CompiledRule[] = []
  readonly #connectDeny: CompiledRule[] = []
  readonly #rate: RateLimiter
  readonly #clock: Clock

  constructor(doc: PolicyDocument, opts: CompileOptions = {}) {
    this.document = doc
    this.revision = doc.revision
    this.#clock = opts.clock ?? systemClock
    const rates: number[] = []
    this.#rules = doc.rules.map((r, i) => {
      const rate = r.rate === undefined || r.effect === 'deny' ? undefined : parseRate(r.rate)
      const slot = rate === undefined ? -1 : rates.push(rate) - 1
      return compileRule(r, i, slot, opts)
    })
    this.#rate = new RateLimiter(rates, opts.maxRateClients)
    doc.rules.forEach((r, i) => {
      const rule = this.#rules[i]!
      for (const action of r.actions) {
        if (action === 'connect') {
          ;(rule.deny ? this.#connectDeny : this.#connectAllow).push(rule)
          continue
        }
        const ix = this.#index[action]
        for (const f of r.topics ?? []) {
          const levels = parseFilter(f)
          if (r.exact) (rule.deny ? ix.exactDeny : ix.exactAllow).push({ rule: i, parts: exactParts(levels) })
          else (rule.deny ? ix.deny : ix.allow).insert(levels, i)
        }
      }
    })
    for (const ix of Object.values(this.#index)) {
      ix.allow.finish()
      ix.deny.finish()
    }
    Object.freeze(this)
  }

  get ruleCount(): number { return this.#rules.length }

  /** Rate buckets currently held (bounded; emptied on disconnect). */
  get rateClients(): number { return this.#rate.size }

  release(clientId: string): void {
    this.#rate.release(clientId)
  }

  /** Nothing to release but memory; kept for the loader's `close()` contract. */
  async close(): Promise<void> {}

  decide(identity: Identity, action: Action, topic: string, input: DecisionInput): Decision {
    if (action === 'publish') return this.#publish(identity, topic, input)
    if (action === 'subscribe') return this.#subscribe(identity, topic)
    return this.#connect(identity)
  }

  #connect(id: Identity): Decision {
    // connect is open to any authenticated identity unless a connect deny matches; once a
    // policy lists connect allow rules, only identities they name may connect
    let monitored: Decision | undefined
    for (const r of this.#connectDeny) {
      if (!whoMatches(r.who, id)) continue
      if (!r.monitor) return r.denied
      monitored ??= r.denied
    }
    if (this.#connectAllow.length === 0) return monitored ?? CONNECT_DEFAULT
    for (const r of this.#connectAllow) if (whoMatches(r.who, id)) return monitored ?? r.allowed
    return CONNECT_NOT_LISTED
  }

  #publish(id: Identity, topic: string, input: DecisionInput): Decision {
    const ix = this.#index.publish
    const deny = DENY_HITS
    const allow = ALLOW_HITS
    deny.length = 0
    allow.length = 0
    matchTopic(ix.deny, id, topic, 0, true, deny)
    for (const e of ix.exactDeny) if (matchTemplate(e.parts, id, topic, 0, topic.length)) deny.push(e.rule)
    const payload = input.payload
    let text: string | undefined
    // a monitor-mode deny that matches is remembered; enforced rules still decide
    let monitored: Decision | undefined
    if (deny.length > 0) {
      sortUnique(deny)
      for (let i = 0; i < deny.length; i++) {
        const r = this.#rules[deny[i]!]!
        if (!whoMatches(r.who, id)) continue
        let hit: Decision | undefined
        if (!r.hasPayload) hit = r.denied
        else if (payload !== undefined) {
          // content checks run only for rules matching this topic; UTF-8 decoded once
          text ??= decoder.decode(payload)
          for (let m = 0; m < r.matchers.length && hit === undefined; m++) {
            const re = r.matchers[m]!
            re.lastIndex = 0
            if (re.test(text)) hit = r.matchDenied
          }
          if (hit === undefined && r.detectors !== undefined) {
            const name = r.detectors.firstMatch(text)
            if (name !== undefined) hit = r.detectorDenied.get(name) ?? r.matchDenied
          }
        }
        if (hit === undefined) continue
        if (!r.monitor) return hit
        monitored ??= hit
      }
    }
    const res = this.#publishAllow(id, topic, input)
    return monitored === undefined ? res : withMonitored(res, monitored)
  }

  #publishAllow(id: Identity, topic: string, input: DecisionInput): Decision {
    const ix = this.#index.publish
    const allow = ALLOW_HITS
    matchTopic(ix.allow, id, topic, 0, true, allow)
    for (const e of ix.exactAllow) if (matchTemplate(e.parts, id, topic, 0, topic.length)) allow.push(e.rule)
    if (allow.length === 0) return isReservedTopic(topic) ? RESERVED_DENY : DEFAULT_DENY
    sortUnique(allow)
    // an approval rule that matches wins over plain allows (deny > hold > allow), whatever the
    // file order; when its limits refuse, a plain allow does not get around the approval
    const held = this.#firstAllowed(id, input, true)
    if (held !== undefined) return held
    return this.#firstAllowed(id, input, false) ?? (isReservedTopic(topic) ? RESERVED_DENY : DEFAULT_DENY)
  }

  /** First allow rule in ALLOW_HITS (of the hold kind or not) whose who and limits pass; else its first refusal. */
  #firstAllowed(id: Identity, input: DecisionInput, holds: boolean): Decision | undefined {
    const allow = ALLOW_HITS
    const qos = input.qos ?? 0
    const bytes = input.payload?.length ?? 0
    let refused: Decision | undefined
    for (let i = 0; i < allow.length; i++) {
      const r = this.#rules[allow[i]!]!
      if ((r.ok.effect === 'hold') !== holds || !whoMatches(r.who, id)) continue
      if ((r.qosMask & (1 << qos)) === 0) { refused ??= r.qosDenied; continue }
      if (input.retain === true && r.retain === false) { refused ??= r.retainDenied; continue }
      if (bytes > r.maxPayloadBytes) { refused ??= r.sizeDenied; continue }
      if (r.rateSlot >= 0 && !this.#rate.take(id.clientId, r.rateSlot, this.#clock.now())) { refused ??= r.rateDenied; continue }
      return r.ok
    }
    return refused
  }

  #subscribe(id: Identity, filter: string): Decision {
    // Aedes has no shared subscriptions: `$share/...` is an ordinary `$` filter, reachable only by a rule naming it
    const ix = this.#index.subscribe
    const deny = DENY_HITS
    const allow = ALLOW_HITS
    deny.length = 0
    allow.length = 0
    const wild = filter.includes('+') || filter.includes('#')
    const levels = wild ? filter.split('/') : undefined
    // deny: any topic the subscription could receive that a deny filter names
    if (levels) overlapFilter(ix.deny, id, levels, 0, deny)
    else matchTopic(ix.deny, id, filter, 0, true, deny)
    for (const e of ix.exactDeny) if (matchTemplate(e.parts, id, filter, 0, filter.length)) deny.push(e.rule)
    let monitored: Decision | undefined
    if (deny.length > 0) {
      sortUnique(deny)
      for (let i = 0; i < deny.length; i++) {
        const r = this.#rules[deny[i]!]!
        if (!whoMatches(r.who, id)) continue
        if (!r.monitor) return r.denied
        monitored ??= r.denied
      }
    }
    const res = this.#subscribeAllow(id, filter, levels)
    return monitored === undefined ? res : withMonitored(res, monitored)
  }

  #subscribeAllow(id: Identity, filter: string, levels: string[] | undefined): Decision {
    const ix = this.#index.subscribe
    const allow = ALLOW_HITS
    // allow: one allow filter must cover every topic the subscription can match
    if (levels) coverFilter(ix.allow, id, levels, 0, allow)
    else matchTopic(ix.allow, id, filter, 0, true, allow)
    for (const e of ix.exactAllow) if (matchTemplate(e.parts, id, filter, 0, filter.length)) allow.push(e.rule)
    sortUnique(allow)
    for (let i = 0; i < allow.length; i++) {
      const r = this.#rules[allow[i]!]!
      if (whoMatches(r.who, id)) return r.subOk
    }
    return isReservedTopic(filter) ? RESERVED_DENY : DEFAULT_DENY
  }
}
