import { compileMatcher } from './compile.js'
import { covers, FilterError, parseFilter, type Level } from './filter.js'
import type { RuleSource, RuleSpec, WhoSpec } from './document.js'
import type { LintIssue, Locate, Path } from './load.js'
import { formatKey } from './load.js'

const LIMIT_KEYS = ['qos', 'retain', 'maxPayloadBytes', 'rate', 'approval'] as const

/** Checks the schema cannot express, over the merged rules of all files. */
export function semanticChecks(rules: readonly RuleSpec[], sources: readonly RuleSource[], locate: Locate): LintIssue[] {
  const issues: LintIssue[] = []
  const at = (i: number, path: Path, message: string, severity: LintIssue['severity'] = 'error'): void => {
    const s = sources[i]!
    const full: Path = ['rules', s.index, ...path]
    issues.push({ severity, file: s.file, ...locate(s.file, full), key: formatKey(full), message })
  }
  const ids = new Map<string, number>()
  const parsed: (Level[] | undefined)[][] = []
  rules.forEach((r, i) => {
    const prev = ids.get(r.id)
    if (prev !== undefined) at(i, ['id'], `duplicate rule id '${r.id}' (first defined in ${sources[prev]!.file})`)
    else ids.set(r.id, i)
    const topical = r.actions.some((a) => a !== 'connect')
    if (topical && !r.topics) at(i, ['actions'], 'publish and subscribe rules need `topics`')
    if (!topical && r.topics) at(i, ['topics'], 'connect rules have no topics; they are ignored', 'warning')
    parsed[i] = (r.topics ?? []).map((t, j) => {
      try {
        return parseFilter(t)
      } catch (err) {
        if (!(err instanceof FilterError)) throw err
        at(i, ['topics', j], err.message)
        return undefined
      }
    })
    if (r.effect === 'deny') {
      for (const k of LIMIT_KEYS) if (r[k] !== undefined) at(i, [k], `only allow rules carry \`${k}\` (a deny rule refuses outright)`)
    } else if (r.payload) at(i, ['payload'], 'content rules (`payload`) must be deny rules')
    if (r.payload && r.actions.some((a) => a !== 'publish')) at(i, ['payload'], 'content rules apply to publish only')
    if (r.approval && r.actions.some((a) => a !== 'publish')) at(i, ['approval'], 'approval applies to publish only')
    if (r.exact && !r.actions.includes('subscribe')) at(i, ['exact'], '`exact` compares subscription filters; this rule has no subscribe action', 'warning')
    const m = r.payload?.matches
    ;(m === undefined ? [] : typeof m === 'string' ? [m] : m).forEach((src, j) => {
      try {
        compileMatcher(src)
      } catch (err) {
        at(i, ['payload', 'matches', ...(typeof m === 'string' ? [] : [j])], `invalid regular expression: ${(err as Error).message}`)
      }
    })
  })
  // an allow whose every topic some deny (for everyone it names) already refuses never takes effect
  rules.forEach((r, i) => {
    if (r.effect !== 'allow' || r.exact) return
    for (const action of r.actions) {
      if (action === 'connect') continue
      const filters = parsed[i]!
      if (filters.length === 0 || filters.some((f) => f === undefined)) continue
      const by = rules.findIndex((d, k) => d.effect === 'deny' && d.mode !== 'monitor' && !d.exact && !d.payload && d.actions.includes(action) && whoCovers(d.who, r.who)
        && filters.every((f) => parsed[k]!.some((df) => df !== undefined && covers(df, f!))))
      if (by >= 0) at(i, ['topics'], `never takes effect for ${action}: rule '${rules[by]!.id}' denies all of its topics`)
    }
  })
  return issues
}

/** Does a deny's `who` include everyone the allow's `who` names? */
function whoCovers(deny: WhoSpec | undefined, allow: WhoSpec | undefined): boolean {
  if (!deny) return true
  for (const k of ['groups', 'kinds', 'subs'] as const) {
    const d = deny[k]
    if (!d) continue
    const a = allow?.[k]
    if (!a || !a.every((v) => d.includes(v))) return false
  }
  return true
}
