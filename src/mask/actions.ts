import { createHmac, createSecretKey } from 'node:crypto'
import type { FieldSpec } from './types.js'

export const REDACTED = '[REDACTED]'
/** marks "remove this value" for the tree walker */
export const DROP: unique symbol = Symbol('drop')

const HASHED = /^h:[0-9a-f]{32}$/
const HASH_CACHE = 4096

export type ValueAction = (value: unknown) => unknown

/**
 * Field actions as value → value functions, built once per field rule. `hash` is
 * HMAC-SHA256 over the value's text (so 42 and "42" give one token and masked data stays
 * joinable), written `h:` + the first 32 hex digits (128 bits).
 */
export function compileAction(f: FieldSpec, hashKey: Buffer): ValueAction {
  switch (f.action) {
    case 'redact':
      return () => REDACTED
    case 'drop':
      return () => DROP
    case 'replace': {
      const v = f.value === undefined ? null : f.value
      return () => v
    }
    case 'hash': {
      const key = createSecretKey(hashKey)
      // ids repeat from message to message (a device's customer, a site): remember recent tokens
      const recent = new Map<string, string>()
      return (v) => {
        // a token is left as it is: masking twice (retained messages re-read) gives the same bytes
        if (typeof v === 'string' && HASHED.test(v)) return v
        const input = hashInput(v)
        const cacheable = typeof input === 'string' && input.length <= 256
        if (cacheable) {
          const hit = recent.get(input)
          if (hit !== undefined) return hit
        }
        const token = 'h:' + createHmac('sha256', key).update(input).digest('hex').slice(0, 32)
        if (cacheable) {
          if (recent.size >= HASH_CACHE) recent.delete(recent.keys().next().value as string)
          recent.set(input, token)
        }
        return token
      }
    }
    case 'last4':
      return last4
    case 'round': {
      const digits = f.digits ?? 0
      const m = 10 ** digits
      return (v) => round(v, digits, m)
    }
  }
}

function hashInput(v: unknown): string | Uint8Array {
  if (typeof v === 'string') return v
  if (v instanceof Uint8Array) return v
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  if (v === null || v === undefined) return ''
  // structures: a stable rendering (Maps from MessagePack become entry lists)
  return JSON.stringify(v, (_k, x: unknown) => (x instanceof Map ? [...x.entries()] : typeof x === 'bigint' ? String(x) : x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x))
}

/** `****` + the last four characters; four or fewer characters reveal nothing; non-scalars are redacted. */
function last4(v: unknown): unknown {
  let s: string
  if (typeof v === 'string') s = v
  else if (typeof v === 'number' || typeof v === 'bigint') s = String(v)
  else if (v === null || v === undefined) return v
  else return REDACTED
  const chars = /[^\x00-\x7f]/.test(s) ? Array.from(s) : s
  if (chars.length <= 4) return '****'
  return '****' + (typeof chars === 'string' ? chars.slice(-4) : chars.slice(-4).join(''))
}

/** Numbers (and numeric strings) rounded to `digits`; anything else is redacted, never passed raw. */
function round(v: unknown, digits: number, m: number): unknown {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.round(v * m) / m : v
  if (typeof v === 'bigint' || v === null || v === undefined) return v
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return (Math.round(Number(v) * m) / m).toFixed(digits)
  return REDACTED
}
