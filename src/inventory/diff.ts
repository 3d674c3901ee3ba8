import type { Identity, IdentityKind } from '../identity/types.js'
import type { JournalRecord } from '../journal/types.js'
import type { PolicyEngine } from '../policy/types.js'
import { addTopic, covers } from './topics.js'
import type { TopicStat } from './types.js'

/** One identity's would-be refusals, grouped by action and topic filter. */
export interface DiffGroup {
  readonly sub: string
  readonly kind: string
  readonly clientIds: string[]
  readonly items: DiffItem[]
}

export interface DiffItem {
  readonly type: 'would_deny' | 'would_hold' | 'would_mask'
  readonly action: string
  readonly filter: string
  count: number
  readonly rules: string[]
  readonly reasons: string[]
  /** how many of these the current policy, enforced, still refuses (or holds, or masks) */
  stillBlocked: number
  first: number
  last: number
}

export interface PolicyDiff {
  readonly since: number
  readonly revision: string
  readonly total: number
  readonly stillBlocked: number
  readonly groups: DiffGroup[]
}

const WOULD = new Set(['would_deny', 'would_hold', 'would_mask'])
const MAX_FILTERS = 32

/**
 * What enforcing would have blocked: the journal's would_* records since `since`, grouped by
 * identity and then by action and topic filter (topics compacted like the inventory's), each
 * re-checked against `policy` (the current one) so an operator sees what is still refused.
 * Records are read newest first and the scan stops at the first one older than `since`.
 */
export function policyDiff(records: Iterable<JournalRecord>, policy: PolicyEngine, since: number): PolicyDiff {
  const bySub = new Map<string, { kind: string; clientIds: Set<string>; items: Map<string, DiffItem>; topics: Map<string, Map<string, TopicStat>> }>()
  let total = 0
  let still = 0
  for (const r of records) {
    if (r.ts < since) break
    if (!WOULD.has(r.type)) continue
    total++
    const sub = r.sub ?? '(unknown)'
    let g = bySub.get(sub)
    if (!g) { g = { kind: r.kind ?? 'device', clientIds: new Set(), items: new Map(), topics: new Map() }; bySub.set(sub, g) }
    if (r.clientId) g.clientIds.add(r.clientId)
    const action = typeof r.action === 'string' ? r.action : 'publish'
    const blocked = stillBlocked(r, action, policy)
    if (blocked) still++
    const key = `${r.type} ${action} ${r.topic ?? ''}`
    let it = g.items.get(key)
    if (!it) { it = { type: r.type as DiffItem['type'], action, filter: r.topic ?? '', count: 0, rules: [], reasons: [], stillBlocked: 0, first: r.ts, last: r.ts }; g.items.set(key, it) }
    it.count++
    if (blocked) it.stillBlocked++
    it.first = Math.min(it.first, r.ts)
    it.last = Math.max(it.last, r.ts)
    if (r.rule && !it.rules.includes(r.rule)) it.rules.push(r.rule)
    if (r.reason && !it.reasons.includes(r.reason) && it.reasons.length < 8) it.reasons.push(r.reason)
  }
  const groups: DiffGroup[] = []
  for (const [sub, g] of bySub) groups.push({ sub, kind: g.kind, clientIds: [...g.clientIds].sort(), items: compactItems([...g.items.values()]) })
  groups.sort((a, b) => total0(b) - total0(a) || a.sub.localeCompare(b.sub))
  return { since, revision: policy.revision, total, stillBlocked: still, groups }
}

const total0 = (g: DiffGroup): number => g.items.reduce((n, i) => n + i.count, 0)

/** Past MAX_FILTERS topics per (type, action), topics fold into `+` filters like the inventory's. */
function compactItems(items: DiffItem[]): DiffItem[] {
  const byKind = new Map<string, DiffItem[]>()
  for (const it of items) {
    const k = `${it.type} ${it.action}`
    byKind.set(k, [...(byKind.get(k) ?? []), it])
  }
  const out: DiffItem[] = []
  for (const list of byKind.values()) {
    if (list.length <= MAX_FILTERS) { out.push(...list); continue }
    const set = new Map<string, TopicStat>()
    for (const it of list) addTopic(set, it.filter, it.count, 0, MAX_FILTERS)
    const merged = new Map<string, DiffItem>()
    for (const it of list) {
      const f = [...set.keys()].find((k) => k === it.filter || covers(k, it.filter)) ?? it.filter
      const m = merged.get(f)
      if (!m) { merged.set(f, { ...it, filter: f, rules: [...it.rules], reasons: [...it.reasons] }); continue }
      m.count += it.count
      m.stillBlocked += it.stillBlocked
      m.first = Math.min(m.first, it.first)
      m.last = Math.max(m.last, it.last)
      for (const r of it.rules) if (!m.rules.includes(r)) m.rules.push(r)
      for (const r of it.reasons) if (!m.reasons.includes(r) && m.reasons.length < 8) m.reasons.push(r)
    }
    out.push(...merged.values())
  }
  return out.sort((a, b) => b.count - a.count || a.filter.localeCompare(b.filter))
}

/** Would the current policy, enforced, still refuse (or hold) this? Masks are not re-checked here. */
function stillBlocked(r: JournalRecord, action: string, policy: PolicyEngine): boolean {
  if (r.type === 'would_mask' || (r.masks !== undefined && r.type === 'would_deny' && r.reason === 'unparseable_payload')) return true
  // content rules need the payload, which would_* records do not keep: counted as still refused
  if (typeof r.reason === 'string' && (r.reason.startsWith('payload_') || r.reason === 'rate_limited')) return true
  const identity: Identity = {
    sub: r.sub ?? '', clientId: r.clientId ?? '', kind: (r.kind ?? 'device') as IdentityKind,
    groups: Array.isArray(r.groups) ? (r.groups as string[]) : [], claims: { sub: r.sub, client_id: r.clientId }, listener: typeof r.listener === 'string' ? r.listener : '',
  }
  const act = action === 'subscribe' || action === 'connect' ? action : 'publish'
  const d = policy.decide(identity, act, r.topic ?? '', { qos: r.qos, retain: r.retain })
  return d.effect !== 'allow'
}
