import { MaskPlan } from '../../src/mask/plan.js'
import type { MaskSpec } from '../../src/mask/types.js'

export const KEY = Buffer.from('test-hash-key-0123456789abcdef')

/** a mask spec with defaults filled the way the loader fills them */
export function spec(s: Partial<MaskSpec> & { id?: string }): MaskSpec {
  return { id: 'm', topics: ['#'], format: 'auto', fields: [], detectors: [], ...s }
}

export function plan(specs: Partial<MaskSpec>[], key = KEY, onParseError: 'block' | 'pass' | 'redact-all' = 'block'): MaskPlan {
  return new MaskPlan(specs.map((s, i) => spec({ id: `m${i}`, ...s })), { hashKey: key, onParseError })
}

/** masks a JSON value with one mask, returns the parsed result (throws on refusal) */
export function maskJson(s: Partial<MaskSpec>, value: unknown, key = KEY): unknown {
  const p = plan([s], key)
  const r = p.apply(p.match('t'), Buffer.from(JSON.stringify(value)))
  if (!r.ok) throw new Error(r.detail)
  return JSON.parse(r.payload.toString())
}
