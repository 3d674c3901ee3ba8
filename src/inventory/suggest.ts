import { stringify } from 'yaml'
import type { InventoryEntry } from './types.js'

export interface SuggestOptions {
  /** only clientIds seen since (ms) */
  readonly since: number
  /** a filter joins a cluster's rule when at least this share of its clients used it */
  readonly minShare?: number
}

export interface Suggestion {
  readonly yaml: string
  readonly rules: number
  /** observed filters left out (used by too few clients of their cluster), for the operator */
  readonly leftOut: readonly { clientId: string; sub: string; action: 'publish' | 'subscribe'; filter: string }[]
}

const ID_CHARS = /[^A-Za-z0-9._:-]+/g

/** A level equal to the clientId becomes `${client_id}`, else one equal to the sub `${sub}`. */
export function templateFilter(filter: string, clientId: string, sub: string): string {
  return filter.split('/').map((l) => (l === clientId ? '${client_id}' : l === sub ? '${sub}' : l)).join('/')
}

/**
 * Least-privilege allow rules from what the inventory observed. Clients are clustered by
 * kind and groups; topics are templated per client (`site/1/dev/${client_id}/telemetry`);
 * a templated filter becomes part of the cluster's rule when at least `minShare` of the
 * cluster's clients used it (default: half). What only a few clients of a large cluster did
 * — a script reusing a device token to reach other devices' commands — is left out and
 * listed in a comment, so enforcing the suggestion refuses it. Review before use.
 */
export function suggestPolicy(entries: readonly InventoryEntry[], o: SuggestOptions): Suggestion {
  const minShare = o.minShare ?? 0.5
  const clusters = new Map<string, { kind: string; groups: string[]; clients: InventoryEntry[] }>()
  for (const e of entries) {
    if (e.type !== 'client' || e.lastSeen < o.since) continue
    const groups = [...e.groups].sort()
    const key = `${e.kind}|${groups.join(',')}`
    let c = clusters.get(key)
    if (!c) { c = { kind: e.kind, groups, clients: [] }; clusters.set(key, c) }
    c.clients.push(e)
  }
  const rules: Record<string, unknown>[] = []
  const leftOut: Suggestion['leftOut'][number][] = []
  const ids = new Set<string>()
  const idFor = (base: string): string => {
    let id = base.replace(ID_CHARS, '-').replace(/^-+/, '').slice(0, 120) || 'suggested'
    if (!/^[A-Za-z0-9]/.test(id)) id = `s-${id}`
    let n = 2
    const b = id
    while (ids.has(id)) id = `${b}-${n++}`
    ids.add(id)
    return id
  }
  for (const c of [...clusters.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.groups.join().localeCompare(b.groups.join()))) {
    const who: Record<string, string[]> = { kinds: [c.kind] }
    if (c.groups.length > 0) who.groups = c.groups
    // a cluster of one client that is one identity names it: least privilege for singletons
    const subs = [...new Set(c.clients.flatMap((e) => e.related))]
    if (c.groups.length === 0 && subs.length > 0 && subs.length <= 3) who.subs = subs.sort()
    for (const action of ['publish', 'subscribe'] as const) {
      const users = new Map<string, Set<string>>()
      for (const e of c.clients) {
        const sub = e.related[e.related.length - 1] ?? ''
        const set = action === 'publish' ? e.published : e.subscribed
        for (const f of set.keys()) {
          const t = templateFilter(f, e.id, sub)
          const u = users.get(t) ?? new Set<string>()
          u.add(e.id)
          users.set(t, u)
        }
      }
      const keep: string[] = []
      for (const [f, u] of users) {
        // a literal `${` in an observed topic would read as a placeholder: never suggested
        if (u.size / c.clients.length >= minShare && !f.replaceAll('${client_id}', '').replaceAll('${sub}', '').includes('${')) keep.push(f)
        else for (const clientId of u) leftOut.push({ clientId, sub: entries.find((x) => x.type === 'client' && x.id === clientId)?.related.join(',') ?? '', action, filter: f })
      }
      if (keep.length === 0) continue
      const name = `suggested-${c.kind}${c.groups.length ? `-${c.groups.join('-')}` : who.subs ? `-${who.subs.join('-')}` : ''}-${action}`
      rules.push({ id: idFor(name), effect: 'allow', actions: [action], topics: keep.sort(), who })
    }
  }
  const header = [
    `# edgewarden policy suggest: least-privilege rules from the inventory (${entries.filter((e) => e.type === 'client' && e.lastSeen >= o.since).length} clientIds seen since ${new Date(o.since).toISOString()})`,
    '# review before use; lint with `edgewarden policy lint`, then enforce.',
    ...leftOut.map((l) => `# left out (${l.action} by ${JSON.stringify(l.clientId)}${l.sub ? ` as ${JSON.stringify(l.sub)}` : ''}, too few of its cluster did this): ${JSON.stringify(l.filter)}`.replace(/[\r\n\u2028\u2029]/g, ' ')),
  ].join('\n')
  return { yaml: `${header}\n${stringify({ rules }, { lineWidth: 0 })}`, rules: rules.length, leftOut }
}
