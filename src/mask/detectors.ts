import { isIPv6 } from 'node:net'

/**
 * Free-text detectors for PII and secrets (SPEC §5 `masks[].detectors`, and content-deny
 * rules `payload.detectors`). Every regex is compiled once at module load; a compiled set
 * only picks the ones it needs. A match is replaced in place by `[REDACTED:<name>]`
 * (the rest of the string is kept), e.g. `mail bob@x.io now` → `mail [REDACTED:email] now`.
 */
export type DetectorName = 'email' | 'phone' | 'credit_card' | 'iban' | 'ipv4' | 'ipv6' | 'ssn' | 'jwt' | 'private_key' | 'secret'

export const DETECTOR_NAMES: readonly DetectorName[] = Object.freeze(['email', 'phone', 'credit_card', 'iban', 'ipv4', 'ipv6', 'ssn', 'jwt', 'private_key', 'secret'])

export interface CompiledDetectors {
  readonly names: readonly DetectorName[]
  /** the first detector (in priority order, see PRIORITY) that matches, or undefined */
  firstMatch(text: string): DetectorName | undefined
  /**
   * Replaces every match in place. `hits` has one entry per replaced match (for counts in
   * the journal); with no match the same string and a shared empty, frozen array come back.
   */
  replaceAll(text: string): { text: string; hits: DetectorName[] }
  /** replaceAll for the masking walk: counts hits into `counts`; undefined when nothing matched */
  maskInto(text: string, counts: Record<string, number>): string | undefined
}

export function replacementFor(name: DetectorName): string {
  return REPLACEMENT[name]
}

/** Cheap facts about a string, gathered in one pass, that let most detectors skip it. */
interface Features {
  digits: number
  at: boolean
  colons: number
  dots: boolean
  dashes: boolean
  upper: boolean
}

interface Detector {
  readonly name: DetectorName
  /** global regex */
  readonly re: RegExp
  readonly quick: (f: Features, s: string) => boolean
  readonly valid?: (match: string) => boolean
  /** builds the replacement from the replace() arguments (match, groups...), when not the plain token */
  readonly render?: (args: unknown[]) => string
}

const REPLACEMENT: Record<DetectorName, string> = Object.freeze({
  email: '[REDACTED:email]', phone: '[REDACTED:phone]', credit_card: '[REDACTED:credit_card]', iban: '[REDACTED:iban]',
  ipv4: '[REDACTED:ipv4]', ipv6: '[REDACTED:ipv6]', ssn: '[REDACTED:ssn]', jwt: '[REDACTED:jwt]',
  private_key: '[REDACTED:private_key]', secret: '[REDACTED:secret]',
})

function countDigits(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) n++
  }
  return n
}

/** Luhn checksum over the digits of a candidate card number. */
export function luhn(digits: string): boolean {
  let sum = 0
  let dbl = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (dbl) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    dbl = !dbl
  }
  return sum % 10 === 0
}

/** ISO 13616 check: move the first four characters to the end, letters → 10..35, mod 97 = 1. */
export function ibanValid(raw: string): boolean {
  const s = raw.replace(/ /g, '')
  if (s.length < 15 || s.length > 34) return false
  const r = s.slice(4) + s.slice(0, 4)
  let rem = 0
  for (let i = 0; i < r.length; i++) {
    const c = r.charCodeAt(i)
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97
    else return false
  }
  return rem === 1
}

// issuer prefixes of the major card networks: a Luhn-valid number with none of these is a serial
const CARD_PREFIX = /^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3[0689]|6(?:011|5|4[4-9]|2))/

function cardValid(m: string): boolean {
  const d = m.replace(/[ -]/g, '')
  if (d.length < 13 || d.length > 19) return false
  // separators, when present, must be one kind (4111-1111 1111-1111 is not a card layout)
  if (m.includes(' ') && m.includes('-')) return false
  return CARD_PREFIX.test(d) && luhn(d)
}

function phoneValid(m: string): boolean {
  const n = countDigits(m)
  if (m.charCodeAt(0) === 43 /* + */) return n >= 8 && n <= 15 && !/[.-]{2}|  |\(\)/.test(m)
  return n >= 9 && n <= 12
}

const DETECTORS: Record<DetectorName, Detector> = {
  private_key: {
    name: 'private_key',
    // an unterminated block is masked to the end: a truncated key is still a key
    re: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*$)/g,
    quick: (_f, s) => s.includes('PRIVATE KEY'),
  },
  jwt: {
    name: 'jwt',
    // header and payload are base64url JSON objects, so both start with eyJ ('{"')
    re: /(?<![\w-])eyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*/g,
    quick: (_f, s) => s.includes('eyJ'),
  },
  secret: {
    name: 'secret',
    re: new RegExp([
      /\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/.source, // AWS access key id
      /\b[Bb]earer\s+[A-Za-z0-9\-._~+/]{16,}=*/.source, // HTTP bearer tokens
      /(?<![\w-])sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}/.source, // OpenAI/Anthropic style keys
      /\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}/.source, // Stripe
      /\bgh[pousr]_[A-Za-z0-9]{36,}\b/.source, // GitHub tokens
      /\bgithub_pat_[A-Za-z0-9_]{22,}/.source,
      /\bxox[abposr]-[A-Za-z0-9-]{10,}/.source, // Slack
      /\bAIza[0-9A-Za-z_-]{35}/.source, // Google API key
    ].join('|'), 'g'),
    quick: (f, s) => (f.upper && (s.includes('AKIA') || s.includes('ASIA') || s.includes('ABIA') || s.includes('ACCA') || s.includes('AIza')))
      || s.includes('sk-') || s.includes('k_') || s.includes('gh') || s.includes('xox') || s.includes('earer'),
  },
  email: {
    name: 'email',
    re: /(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])/g,
    quick: (f) => f.at,
  },
  iban: {
    name: 'iban',
    re: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g,
    quick: (f) => f.upper && f.digits >= 6,
    valid: ibanValid,
  },
  credit_card: {
    name: 'credit_card',
    // 4-4-4-(1..7) with one consistent separator (or none), or Amex 4-6-5
    re: /(?<![\d-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}[ -]?\d{6}[ -]?\d{4,5})(?![\d])/g,
    quick: (f) => f.digits >= 13,
    valid: cardValid,
  },
  ssn: {
    name: 'ssn',
    // dashes required: nine bare digits are as likely a serial or an id
    re: /(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])/g,
    quick: (f) => f.dashes && f.digits >= 9,
  },
  ipv6: {
    name: 'ipv6',
    re: /(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}(?![\w:.])/g,
    quick: (f) => f.colons >= 2,
    valid: (m) => /[0-9A-Fa-f]/.test(m) && isIPv6(m),
  },
  ipv4: {
    name: 'ipv4',
    // not part of a longer dotted number (versions like 1.2.3.4.5, OIDs)
    re: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)/g,
    quick: (f) => f.dots && f.digits >= 4,
  },
  phone: {
    name: 'phone',
    re: new RegExp([
      // E.164 with optional separators: +14155552671, +44 20 7946 0958, +49 (30) 1234-5678
      /(?<![\w+])\+[1-9][\d ().-]{6,20}\d(?![\d])/.source,
      // NANP with separators: (415) 555-2671, 415-555-2671, 415.555.2671
      /(?<![\w.+-])(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|\.\d)/.source,
      // trunk-prefix national numbers with at least one separator: 020 7946 0958, 07700 900123, 030-1234567
      /(?<![\w.+-])0\d{2,4}[ -]\d{3,4}(?:[ -]?\d{2,4})?(?![\w-]|\.\d)/.source,
    ].join('|'), 'g'),
    quick: (f) => f.digits >= 8,
    valid: phoneValid,
  },
}

/** Order of application: long and specific shapes first, so a JWT is not half-eaten as a phone. */
const PRIORITY: readonly DetectorName[] = ['private_key', 'jwt', 'secret', 'email', 'iban', 'credit_card', 'ssn', 'ipv6', 'ipv4', 'phone']

// generic `password=...` / `"api_key": "..."` assignments: the key is kept, the value masked
const ASSIGNMENT: Detector = {
  name: 'secret',
  re: /\b((?:password|passwd|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key)["']?\s*[:=]\s*)(?!["']?\[REDACTED:)(?:"([^"\n]+)"|'([^'\n]+)'|([^\s,;&"'}\]]+))/gi,
  quick: (_f, s) => s.includes('=') || s.includes(':'),
  // keep the key and the quotes: `password="x"` → `password="[REDACTED:secret]"`
  render: (args) => {
    const q = args[2] !== undefined ? '"' : args[3] !== undefined ? "'" : ''
    return (args[1] as string) + q + REPLACEMENT.secret + q
  },
}

/** shortest text each detector can match (`::1`, `a@b.io`, `pwd=x`, `1.2.3.4`, ...) */
const MIN_LENGTH: Record<DetectorName, number> = Object.freeze({
  email: 6, phone: 9, credit_card: 13, iban: 15, ipv4: 7, ipv6: 3, ssn: 11, jwt: 16, private_key: 30, secret: 5,
})

const NO_HITS: DetectorName[] = Object.freeze([]) as unknown as DetectorName[]

// one scratch object: scanning is synchronous, and this runs for every string value
const scratch: Features = { digits: 0, colons: 0, at: false, dots: false, dashes: false, upper: false }

function features(s: string): Features {
  let digits = 0, colons = 0, at = false, dots = false, dashes = false, upper = false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) digits++
    else if (c === 58) colons++
    else if (c === 64) at = true
    else if (c === 46) dots = true
    else if (c === 45) dashes = true
    else if (c >= 65 && c <= 90) upper = true
  }
  const f = scratch
  f.digits = digits; f.colons = colons; f.at = at; f.dots = dots; f.dashes = dashes; f.upper = upper
  return f
}

/** Compiles the named detectors into one scanner (order fixed by priority, duplicates ignored). */
export function compileDetectors(names: readonly DetectorName[]): CompiledDetectors {
  for (const n of names) if (!(n in DETECTORS)) throw new TypeError(`unknown detector: ${String(n)}`)
  const active: Detector[] = []
  for (const n of PRIORITY) {
    if (!names.includes(n)) continue
    active.push(DETECTORS[n])
    if (n === 'secret') active.push(ASSIGNMENT)
  }
  const ordered = Object.freeze(PRIORITY.filter((n) => names.includes(n)))
  // strings shorter than the shortest possible match are skipped without a scan
  const minLength = Math.min(...ordered.map((n) => MIN_LENGTH[n]))

  function matches(d: Detector, text: string): boolean {
    d.re.lastIndex = 0
    let m: RegExpExecArray | null
    while ((m = d.re.exec(text)) !== null) {
      if (!d.valid || d.valid(m[0])) {
        d.re.lastIndex = 0
        return true
      }
      if (m[0].length === 0) d.re.lastIndex++
    }
    return false
  }

  /** the masked text, or undefined when nothing matched (no allocation on that path) */
  function scan(text: string, hit: (name: DetectorName) => void): string | undefined {
    if (active.length === 0 || text.length < minLength) return undefined
    const f = features(text)
    let out: string | undefined
    for (let i = 0; i < active.length; i++) {
      const d = active[i]!
      const cur = out ?? text
      if (!d.quick(f, cur)) continue
      // a plain test first: most strings that pass the prefilter still hold no match
      d.re.lastIndex = 0
      if (!d.re.test(cur)) continue
      d.re.lastIndex = 0
      const repl = REPLACEMENT[d.name]
      const next = cur.replace(d.re, (...args: unknown[]) => {
        const m = args[0] as string
        if (d.valid && !d.valid(m)) return m
        hit(d.name)
        return d.render ? d.render(args) : repl
      })
      if (next !== cur) out = next
    }
    return out
  }

  return {
    names: ordered,
    firstMatch(text) {
      if (active.length === 0 || text.length < minLength) return undefined
      const f = features(text)
      for (const d of active) if (d.quick(f, text) && matches(d, text)) return d.name
      return undefined
    },
    replaceAll(text) {
      let hits: DetectorName[] | undefined
      const out = scan(text, (name) => { (hits ??= []).push(name) })
      return hits && out !== undefined ? { text: out, hits } : { text, hits: NO_HITS }
    },
    maskInto(text, counts) {
      return scan(text, (name) => { counts[name] = (counts[name] ?? 0) + 1 })
    },
  }
}
