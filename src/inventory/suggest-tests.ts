import { stringify } from 'yaml'
import type { IdentityKind } from '../identity/types.js'
import type { PolicyEngine } from '../policy/types.js'
import type { InventoryEntry } from './types.js'

const PER_CLIENT = 4
const MAX_CASES = 500

/**
 * `policy suggest --tests FILE`: policy test cases (policies/tests format) from what clients
 * were observed doing, each expecting what `policy` (the suggestion, compiled) decides — the
 * evidence kept next to the rules, so a later edit that changes the outcome for observed
 * traffic fails `policy test`. Publish topics with wildcards (compacted) are skipped.
 */
export function suggestTests(entries: readonly InventoryEntry[], policy: PolicyEngine, since: number): { yaml: string; cases: number } {
  const cases: Record<string, unknown>[] = []
  for (const e of entries) {
    if (e.type !== 'client' || e.lastSeen < since || cases.length >= MAX_CASES) continue
    const sub = e.related[e.related.length - 1]
    if (!sub) continue
    const identity = { sub, client_id: e.id, ...(e.groups.length ? { groups: [...e.groups] } : {}), kind: e.kind as IdentityKind }
    const ident = { sub, clientId: e.id, groups: e.groups, kind: e.kind as IdentityKind, claims: { sub, client_id: e.id }, listener: 'test' }
    for (const action of ['publish', 'subscribe'] as const) {
      const set = action === 'publish' ? e.published : e.subscribed
      let n = 0
      for (const filter of set.keys()) {
        if (n >= PER_CLIENT || cases.length >= MAX_CASES) break
        if (action === 'publish' && (filter.includes('+') || filter.includes('#'))) continue
        const d = policy.decide(ident, action, filter, { qos: 0 })
        cases.push({ name: `${e.id} (${sub}) ${action} ${filter}`, identity, action, topic: filter, expect: d.effect })
        n++
      }
    }
  }
  return { yaml: `# edgewarden policy suggest --tests: observed traffic and what the suggested policy decides for it\n${stringify({ cases }, { lineWidth: 0 })}`, cases: cases.length }
}
