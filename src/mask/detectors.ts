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

interface Detector {
  readonly name: DetectorName
  /** global regex */
  readonly re: RegExp
  /** this detector's bit in candidates(): clear means the regex cannot match the string */
  readonly bit: number
  readonly valid?: (match: string) => boolean
  /** builds the replacement from the replace() arguments (match, groups...), when not the plain token */
  readonly render?: (args: unknown[]) => string
}

// one bit per detector (and one for generic assignments) in the mask candidates() returns
const B_PRIVATE_KEY = 1, B_JWT = 2, B_SECRET = 4, B_EMAIL = 8, B_IBAN = 16, B_CARD = 32, B_SSN = 64, B_IPV6 = 128, B_IPV4 = 256, B_PHONE = 512, B_ASSIGN = 1024

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
    bit: B_PRIVATE_KEY,
  },
  jwt: {
    name: 'jwt',
    // header and payload are base64url JSON objects, so both start with eyJ ('{"')
    re: /(?<![\w-])eyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*/g,
    bit: B_JWT,
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
    bit: B_SECRET,
  },
  email: {
    name: 'email',
    // internationalized addresses (RFC 6531): letters and digits of any script, so no part of a
    // local part like `jörg.müller` is left in front of the mask
    re: /(?<![\p{L}\p{N}\p{M}_.%+-])[\p{L}\p{N}\p{M}_.%+-]+@[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]{0,61}[\p{L}\p{N}\p{M}])?(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]{0,61}[\p{L}\p{N}\p{M}])?)*\.\p{L}{2,24}(?![\p{L}\p{N}\p{M}_-])/gu,
    bit: B_EMAIL,
  },
  iban: {
    name: 'iban',
    re: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g,
    bit: B_IBAN,
    valid: ibanValid,
  },
  credit_card: {
    name: 'credit_card',
    // 4-4-4-(1..7) with one consistent separator (or none), or Amex 4-6-5
    re: /(?<![\d-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}|\d{4}[ -]?\d{6}[ -]?\d{4,5})(?![\d])/g,
    bit: B_CARD,
    valid: cardValid,
  },
  ssn: {
    name: 'ssn',
    // dashes required: nine bare digits are as likely a serial or an id
    re: /(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])/g,
    bit: B_SSN,
  },
  ipv6: {
    name: 'ipv6',
    re: /(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}(?![\w:.])/g,
    bit: B_IPV6,
    valid: (m) => /[0-9A-Fa-f]/.test(m) && isIPv6(m),
  },
  ipv4: {
    name: 'ipv4',
    // not part of a longer dotted number (versions like 1.2.3.4.5, OIDs)
    re: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)/g,
    bit: B_IPV4,
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
    bit: B_PHONE,
    valid: phoneValid,
  },
}

/** Order of application: long and specific shapes first, so a JWT is not half-eaten as a phone. */
const PRIORITY: readonly DetectorName[] = ['private_key', 'jwt', 'secret', 'email', 'iban', 'credit_card', 'ssn', 'ipv6', 'ipv4', 'phone']

// generic `password=...` / `"api_key": "..."` assignments: the key is kept, the value masked
const ASSIGNMENT_KEYS = ['password', 'passwd', 'pwd', 'passphrase', 'secret', 'client[_-]?secret', 'api[_-]?key', 'apikey', 'access[_-]?token', 'auth[_-]?token', 'refresh[_-]?token', 'private[_-]?key']
// every key ends in two plain letters: their lower-cased char codes (hi << 8 | lo), for the prefilter
const ASSIGNMENT_ENDINGS = new Set(ASSIGNMENT_KEYS.map((k) => {
  if (!/[a-z]{2}$/.test(k)) throw new Error(`assignment key must end in two letters: ${k}`)
  return (k.charCodeAt(k.length - 2) << 8) | k.charCodeAt(k.length - 1)
}))
const ASSIGNMENT: Detector = {
  name: 'secret',
  re: new RegExp(`\\b((?:${ASSIGNMENT_KEYS.join('|')})["']?\\s*[:=]\\s*)(?!["']?\\[REDACTED:)(?:"([^"\\n]+)"|'([^'\\n]+)'|([^\\s,;&"'}\\]]+))`, 'gi'),
  bit: B_ASSIGN,
  // keep the key and the quotes: `password="x"` → `password="[REDACTED:secret]"`
  render: (args) => {
    const q = args[2] !== undefined ? '"' : args[3] !== undefined ? "'" : ''
    return (args[1] as string) + q + REPLACEMENT.secret + q
  },
}

/** shortest text each detector can match (`::1`, `a@b.io`, `pwd=x`, `1.2.3.4`, `-----BEGIN PRIVATE KEY-----`, ...) */
const MIN_LENGTH: Record<DetectorName, number> = Object.freeze({
  email: 6, phone: 9, credit_card: 13, iban: 15, ipv4: 7, ipv6: 3, ssn: 11, jwt: 16, private_key: 27, secret: 5,
})

const NO_HITS: DetectorName[] = Object.freeze([]) as unknown as DetectorName[]

/** `\s` of a non-unicode JS regex */
function isSpace(c: number): boolean {
  return (c >= 9 && c <= 13) || c === 32 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a)
    || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff
}

/** `s[i]` is `:` or `=`: could an assignment key (`key["']?\s*`) end right before it? */
function assignmentBefore(s: string, i: number): boolean {
  let j = i - 1
  while (j >= 0 && isSpace(s.charCodeAt(j))) j--
  if (j >= 0 && (s.charCodeAt(j) === 34 || s.charCodeAt(j) === 39)) j--
  // | 0x20 lower-cases ASCII letters (the regex is /i) and maps no other char onto one
  return j >= 1 && ASSIGNMENT_ENDINGS.has(((s.charCodeAt(j - 1) | 0x20) << 8) | (s.charCodeAt(j) | 0x20))
}

// the token shapes of `secret` (not assignments): the shortest is `xoxb-` + 10
const SECRET_TOKEN_MIN = 15

function secretHint(s: string, upper: number, dashes: number, under: boolean): boolean {
  return (upper >= 2 && (s.includes('AKIA') || s.includes('ASIA') || s.includes('ABIA') || s.includes('ACCA') || s.includes('AIza')))
    || s.includes('earer')
    || (dashes > 0 && (s.includes('sk-') || s.includes('xox')))
    || (under && (s.includes('k_') || s.includes('gh') || s.includes('github_pat_')))
}

/**
 * Which detectors can match `s` at all (their bits). Each test is a necessary condition of
 * the detector's pattern and validator — a clear bit proves there is no match, it is never a
 * guess — so skipping on it cannot weaken detection. One pass, counts only: tracking runs
 * (13 digits among [0-9 -] for a card, ...) in JS cost more than the regex tests it saved.
 */
function candidates(s: string): number {
  const n = s.length
  let digits = 0, upper = 0, dashes = 0, dots = 0, colons = 0, at = false, under = false, assign = false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c >= 97 && c <= 122) continue // lower-case letters: most of most strings, nothing to count
    if (c >= 48 && c <= 57) digits++
    else if (c >= 65 && c <= 90) upper++
    else if (c === 45) dashes++
    else if (c === 46) dots++
    else if (c === 58) {
      colons++
      if (!assign) assign = assignmentBefore(s, i)
    } else if (c === 64) at = true
    else if (c === 95) under = true
    else if (c === 61 && !assign) assign = assignmentBefore(s, i)
  }
  let bits = 0
  if (n >= MIN_LENGTH.private_key && dashes >= 10 && upper >= 15 && s.includes('PRIVATE KEY')) bits |= B_PRIVATE_KEY
  if (n >= MIN_LENGTH.jwt && dots >= 2 && s.includes('eyJ')) bits |= B_JWT
  if (n >= SECRET_TOKEN_MIN && secretHint(s, upper, dashes, under)) bits |= B_SECRET
  if (assign) bits |= B_ASSIGN
  if (at && n >= MIN_LENGTH.email) bits |= B_EMAIL
  if (n >= MIN_LENGTH.iban && upper >= 2 && digits >= 6) bits |= B_IBAN
  if (digits >= 13) bits |= B_CARD
  if (digits >= 9 && dashes >= 2) bits |= B_SSN
  if (digits >= 8) bits |= B_PHONE
  if (dots >= 3 && digits >= 4) bits |= B_IPV4
  if (colons >= 2) bits |= B_IPV6
  return bits
}

/**
 * Compiles the named detectors into one scanner (order fixed by priority, duplicates ignored).
 * `prefilter: false` runs every regex on every string: the reference the tests hold the
 * prefilter to (same output), never for production use.
 */
export function compileDetectors(names: readonly DetectorName[], prefilter = true): CompiledDetectors {
  for (const n of names) if (!(n in DETECTORS)) throw new TypeError(`unknown detector: ${String(n)}`)
  const active: Detector[] = []
  for (const n of PRIORITY) {
    if (!names.includes(n)) continue
    active.push(DETECTORS[n])
    if (n === 'secret') active.push(ASSIGNMENT)
  }
  const ordered = Object.freeze(PRIORITY.filter((n) => names.includes(n)))
  // strings shorter than the shortest possible match are skipped without a scan
  const minLength = prefilter ? Math.min(...ordered.map((n) => MIN_LENGTH[n])) : 0

  const activeBits = active.reduce((b, d) => b | d.bit, 0)
  const possible = (text: string): number => (prefilter ? candidates(text) & activeBits : activeBits)

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

  /** the masked text, or undefined when nothing matched (no allocation on that path); hits go to `sink` */
  function scan(text: string, sink: Record<string, number> | DetectorName[]): string | undefined {
    if (active.length === 0 || text.length < minLength) return undefined
    let bits = possible(text)
    if (bits === 0) return undefined
    let out: string | undefined
    for (let i = 0; i < active.length; i++) {
      const d = active[i]!
      if ((bits & d.bit) === 0) continue
      const cur = out ?? text
      // a plain test first: most strings that pass the prefilter still hold no match
      d.re.lastIndex = 0
      if (!d.re.test(cur)) continue
      d.re.lastIndex = 0
      const repl = REPLACEMENT[d.name]
      const next = cur.replace(d.re, (...args: unknown[]) => {
        const m = args[0] as string
        if (d.valid && !d.valid(m)) return m
        if (Array.isArray(sink)) sink.push(d.name)
        else sink[d.name] = (sink[d.name] ?? 0) + 1
        return d.render ? d.render(args) : repl
      })
      // the bits of the original text still hold for the masked one: a replacement removes a
      // match and inserts a token that no detector matches (and the prefilter conditions of a
      // match outside the tokens held in the original text already)
      if (next !== cur) out = next
    }
    return out
  }

  return {
    names: ordered,
    firstMatch(text) {
      if (active.length === 0 || text.length < minLength) return undefined
      const bits = possible(text)
      if (bits === 0) return undefined
      for (const d of active) if ((bits & d.bit) !== 0 && matches(d, text)) return d.name
      return undefined
    },
    replaceAll(text) {
      const hits: DetectorName[] = []
      const out = scan(text, hits)
      return hits.length > 0 && out !== undefined ? { text: out, hits } : { text, hits: NO_HITS }
    },
    maskInto(text, counts) {
      return scan(text, counts)
    },
  }
}
