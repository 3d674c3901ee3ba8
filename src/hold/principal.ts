import type { ApproverSpec, Principal } from './types.js'

/** Any listed condition suffices; an empty spec matches nobody (fail closed). */
export function matchesApprovers(spec: ApproverSpec, p: Principal): boolean {
  if (spec.subs?.includes(p.sub)) return true
  if (spec.kinds?.includes(p.kind)) return true
  if (spec.groups?.some((g) => p.groups.includes(g))) return true
  return false
}

/** MQTT filter match for grant topics (`+`, `#`); `$` topics only match filters that name them. */
export function filterMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && !filter.startsWith('$')) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}
