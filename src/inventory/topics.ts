import type { TopicStat } from './types.js'

/**
 * Adds a topic's counts to a bounded set of filters. A topic already covered by a wildcard
 * filter of the set is counted there; past `max` distinct filters the set compacts: the
 * level that varies most becomes `+` (e.g. the device id in `site/1/dev/<id>/telemetry`),
 * until the set is at most 3/4 full; when levels cannot be merged any more, deep
 * filters collapse to `first/#`, then to `#`. Runs at flush, never per publish.
 */
export function addTopic(set: Map<string, TopicStat>, topic: string, count: number, bytes: number, max: number): void {
  let s = set.get(topic)
  if (s === undefined) {
    for (const [f, st] of set) {
      if ((f.includes('+') || f.includes('#')) && f !== topic && covers(f, topic)) { s = st; break }
    }
  }
  if (s === undefined) {
    set.set(topic, { count, bytes })
    if (set.size > max) compact(set, Math.max(1, Math.floor((max * 3) / 4)))
    return
  }
  s.count += count
  s.bytes += bytes
}

export function compact(set: Map<string, TopicStat>, target: number): void {
  while (set.size > target) {
    const keys = [...set.keys()]
    const depth = Math.max(...keys.map((k) => k.split('/').length))
    let best: Map<string, TopicStat> | undefined
    for (let p = 0; p < depth; p++) {
      const m = rebuild(set, (k) => {
        const l = k.split('/')
        if (l.length <= p || l[p] === '#') return k
        l[p] = '+'
        return l.join('/')
      })
      // prefer the deepest level on ties: the varying part of a topic is usually an id near the end
      if (best === undefined || m.size <= best.size) best = m
    }
    if (best === undefined || best.size >= set.size) {
      best = rebuild(set, (k) => { const first = k.split('/')[0]!; return first === '#' || first === '+' ? '#' : `${first}/#` })
      if (best.size >= set.size || best.size > target) best = rebuild(set, () => '#')
    }
    replace(set, best)
  }
}

function rebuild(set: Map<string, TopicStat>, key: (k: string) => string): Map<string, TopicStat> {
  const out = new Map<string, TopicStat>()
  for (const [k, v] of set) {
    const nk = key(k)
    const e = out.get(nk)
    if (e) { e.count += v.count; e.bytes += v.bytes } else out.set(nk, { count: v.count, bytes: v.bytes })
  }
  // a filter covered by another one of the set joins it (e.g. `a/b/c` under `a/+/c`)
  for (const [k, v] of out) {
    for (const [f, st] of out) {
      if (f !== k && (f.includes('+') || f.includes('#')) && covers(f, k)) { st.count += v.count; st.bytes += v.bytes; out.delete(k); break }
    }
  }
  return out
}

/** Does filter `f` match every topic filter `g` matches? (levels compared one by one) */
export function covers(f: string, g: string): boolean {
  const a = f.split('/')
  const b = g.split('/')
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true
    if (i >= b.length) return false
    if (b[i] === '#') return false
    if (a[i] !== '+' && (b[i] === '+' || a[i] !== b[i])) return false
  }
  return a.length === b.length
}

function replace(set: Map<string, TopicStat>, from: Map<string, TopicStat>): void {
  set.clear()
  for (const [k, v] of from) set.set(k, v)
}
