import type { ApproverSpec, Principal } from './types.js'

/** Any listed condition suffices; an empty spec matches nobody (fail closed). */
export function matchesApprovers(spec: ApproverSpec, p: Principal): boolean {
  if (spec.subs?.includes(p.sub)) return true
  if (spec.kinds?.includes(p.kind)) return true
  if (spec.groups?.some((g) => p.groups.includes(g))) return true
  return false
}
