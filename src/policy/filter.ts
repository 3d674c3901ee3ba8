import type { Identity } from '../identity/types.js'

/** A placeholder in a rule filter, resolved against the identity at decision time. */
export interface Placeholder {
  readonly name: string
  get(identity: Identity): string | undefined
}

export type Level =
  | { readonly kind: 'lit'; readonly text: string }
  | { readonly kind: 'plus' }
  | { readonly kind: 'hash' }
  | { readonly kind: 'tpl'; readonly parts: readonly (string | Placeholder)[]; readonly text: string }

export class FilterError extends Error {}

const PLACEHOLDER = /\$\{([^}]*)\}/g
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/

const SUB: Placeholder = { name: 'sub', get: (id) => id.sub }
const CLIENT_ID: Placeholder = { name: 'client_id', get: (id) => id.clientId }

function placeholder(name: string): Placeholder {
  if (name === 'sub') return SUB
  if (name === 'client_id') return CLIENT_ID
  if (name.startsWith('claims.') && CLAIM_NAME.test(name.slice(7))) {
    const claim = name.slice(7)
    return {
      name,
      get: (id) => {
        const v = id.claims[claim]
        return typeof v === 'string' ? v : undefined
      },
    }
  }
  throw new FilterError(`unknown placeholder \${${name}} (use \${sub}, \${client_id} or \${claims.NAME})`)
}

/**
 * Parses a rule filter: MQTT `+` / `#` levels (`#` last, each wildcard alone in its
 * level) and placeholders inside literal levels.
 */
export function parseFilter(filter: string): Level[] {
  if (filter.length === 0) throw new FilterError('empty filter')
  if (filter.includes('\u0000')) throw new FilterError('filter contains a NUL character')
  const raw = filter.split('/')
  return raw.map((text, i) => {
    if (text === '#') {
      if (i !== raw.length - 1) throw new FilterError(`'#' must be the last level (in '${filter}')`)
      return { kind: 'hash' }
    }
    if (text === '+') return { kind: 'plus' }
    if (text.includes('#') || text.includes('+')) throw new FilterError(`a wildcard must fill a whole level (level '${text}' in '${filter}')`)
    if (!text.includes('${')) return { kind: 'lit', text }
    const parts: (string | Placeholder)[] = []
    let last = 0
    for (const m of text.matchAll(PLACEHOLDER)) {
      if (m.index > last) parts.push(text.slice(last, m.index))
      parts.push(placeholder(m[1]!))
      last = m.index + m[0].length
    }
    if (last < text.length) parts.push(text.slice(last))
    if (parts.some((p) => typeof p === 'string' && p.includes('${'))) throw new FilterError(`unterminated placeholder in level '${text}'`)
    return { kind: 'tpl', parts, text }
  })
}

/** A placeholder value widens nothing: it must be one non-empty level without wildcards. */
export function usableValue(v: string | undefined): v is string {
  return v !== undefined && v.length > 0 && v.indexOf('/') < 0 && v.indexOf('+') < 0 && v.indexOf('#') < 0
}

/** Does `topic[start, end)` equal the template with the identity's values filled in? No allocation. */
export function matchTemplate(parts: readonly (string | Placeholder)[], identity: Identity, topic: string, start: number, end: number): boolean {
  let pos = start
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!
    const s = typeof p === 'string' ? p : p.get(identity)
    if (typeof p !== 'string' && !usableValue(s)) return false
    if (!topic.startsWith(s!, pos)) return false
    pos += s!.length
    if (pos > end) return false
  }
  return pos === end
}

/** Text form of a level for lint comparisons (placeholders compare by name). */
export function levelText(l: Level): string {
  return l.kind === 'plus' ? '+' : l.kind === 'hash' ? '#' : l.text
}

const isDollar = (l: Level): boolean => (l.kind === 'lit' || l.kind === 'tpl') && l.text.startsWith('$')
const isWild = (l: Level): boolean => l.kind === 'plus' || l.kind === 'hash'

/**
 * Is every topic `inner` can match also matched by `outer`? (MQTT rules: a wildcard in the
 * first level never matches a `$` topic; `a/#` also matches `a`.) Templates compare by text.
 */
export function covers(outer: readonly Level[], inner: readonly Level[]): boolean {
  for (let i = 0; ; i++) {
    const o = outer[i]
    const n = inner[i]
    if (o === undefined) return n === undefined
    if (o.kind === 'hash') return !(i === 0 && n !== undefined && isDollar(n))
    if (n === undefined) return false
    if (n.kind === 'hash') return false
    if (o.kind === 'plus') {
      if (i === 0 && isDollar(n)) return false
      continue
    }
    if (n.kind === 'plus' || levelText(o) !== levelText(n)) return false
  }
}

/** Is there a topic both filters match? */
export function overlaps(a: readonly Level[], b: readonly Level[]): boolean {
  for (let i = 0; ; i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined) {
      const rest = x ?? y
      return rest === undefined || (rest.kind === 'hash' && !(i === 0))
    }
    if (i === 0 && ((isWild(x) && isDollar(y)) || (isWild(y) && isDollar(x)))) return false
    if (x.kind === 'hash' || y.kind === 'hash') return true
    if (x.kind === 'plus' || y.kind === 'plus') continue
    if (x.kind === 'tpl' || y.kind === 'tpl') continue // a placeholder may take any value
    if (x.text !== y.text) return false
  }
}
