import type { Identity } from '../identity/types.js'
import { compileAction, DROP, type ValueAction } from './actions.js'
import { codecFor, decodeJson, decodeMsgpack, encodeJson, encodeMsgpack, ParseError } from './codecs.js'
import { compileDetectors, type CompiledDetectors } from './detectors.js'
import { parsePath, type PathSeg } from './path.js'
import type { FieldActionName, MaskCounts, MaskFormat, MaskSpec, OnParseError } from './types.js'

/** structures nested deeper than this are not walked: the payload counts as unparseable */
export const MAX_DEPTH = 256
export const REDACTED_ALL = Buffer.from('[REDACTED]')

interface CompiledField {
  readonly segs: readonly PathSeg[]
  readonly action: FieldActionName
  readonly act: ValueAction
}

/** One mask, compiled: everything per-message is a lookup or a walk. */
export interface CompiledMask {
  readonly id: string
  /** position in definition order (masks on one topic apply in this order) */
  readonly index: number
  readonly format: MaskFormat
  readonly onParseError: OnParseError
  /** has unmaskedFor: applied per subscriber view, not to the stored message */
  readonly conditional: boolean
  unmaskedFor(identity: Identity): boolean
  readonly fields: readonly CompiledField[]
  readonly detectors: CompiledDetectors
}

export type StepResult = { readonly ok: true; readonly payload: Buffer } | { readonly ok: false; readonly detail: string }

export function compileMask(spec: MaskSpec, index: number, hashKey: Buffer, defaultOnParseError: OnParseError): CompiledMask {
  const fields = spec.fields.map((f) => ({ segs: parsePath(f.path), action: f.action, act: compileAction(f, hashKey) }))
  const u = spec.unmaskedFor
  const groups = u?.groups ? new Set(u.groups) : undefined
  const kinds = u?.kinds ? new Set<string>(u.kinds) : undefined
  const subs = u?.subs ? new Set(u.subs) : undefined
  return Object.freeze({
    id: spec.id,
    index,
    format: spec.format,
    onParseError: spec.onParseError ?? defaultOnParseError,
    conditional: !!u,
    // like a rule's `who`: every listed condition must hold
    unmaskedFor: (id: Identity) => !!u
      && (!groups || id.groups.some((g) => groups.has(g)))
      && (!kinds || kinds.has(id.kind))
      && (!subs || subs.has(id.sub)),
    fields: Object.freeze(fields),
    detectors: compileDetectors(spec.detectors),
  })
}

function bump(counts: MaskCounts, key: string, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n
}

/**
 * Applies one mask to a payload. `counts` collects what was masked (action and detector
 * names → numbers). A payload the mask cannot read comes back as { ok: false }.
 */
export function applyMask(mask: CompiledMask, payload: Buffer, counts: MaskCounts): StepResult {
  // masked whole already (redact-all): nothing left to read, and masking stays idempotent
  if (payload.equals(REDACTED_ALL)) return { ok: true, payload }
  const codec = codecFor(mask.format, payload)
  if (codec === undefined) return { ok: false, detail: 'not JSON, MessagePack or UTF-8 text' }
  if (codec === 'text') {
    if (mask.detectors.names.length === 0) return { ok: true, payload }
    const out = mask.detectors.maskInto(payload.toString('utf8'), counts)
    return { ok: true, payload: out === undefined ? payload : Buffer.from(out, 'utf8') }
  }
  try {
    let root = codec === 'json' ? decodeJson(payload) : decodeMsgpack(payload)
    let changed = 0
    for (const f of mask.fields) {
      const n = applyField(root, f, 0)
      if (n > 0) bump(counts, f.action, n)
      changed += n
    }
    if (mask.detectors.names.length > 0) {
      if (typeof root === 'string') {
        const out = mask.detectors.maskInto(root, counts)
        if (out !== undefined) { root = out; changed++ }
      } else {
        changed += scanStrings(root, mask.detectors, counts)
      }
    }
    if (changed === 0) return { ok: true, payload }
    return { ok: true, payload: codec === 'json' ? encodeJson(root) : encodeMsgpack(root) }
  } catch (err) {
    if (err instanceof ParseError) return { ok: false, detail: err.message }
    // a structure too deep for the encoder, or any surprise: never pass it on unmasked
    return { ok: false, detail: `cannot mask: ${(err as Error).name}` }
  }
}

type Container = Record<string, unknown> | unknown[] | Map<unknown, unknown>

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) === Object.prototype
}

function setOwn(obj: Record<string, unknown>, k: string, v: unknown): void {
  // `__proto__` from JSON.parse is an own data property: assignment would set the prototype
  if (k === '__proto__') Object.defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true })
  else obj[k] = v
}

function mapKey(m: Map<unknown, unknown>, name: string): unknown {
  if (m.has(name)) return name
  // MessagePack maps may use integer keys
  if (/^-?\d{1,15}$/.test(name) && m.has(Number(name))) return Number(name)
  return undefined
}

/** Applies a field rule under `node`; returns how many values it changed. */
function applyField(node: unknown, f: CompiledField, i: number): number {
  const seg = f.segs[i]!
  const last = i === f.segs.length - 1
  switch (seg.k) {
    case 'key': {
      // one key: no key list (this runs for every message, often inside [*])
      if (isPlainObject(node)) {
        if (!Object.hasOwn(node, seg.name)) return 0
        return last ? setField(node, seg.name, f) : applyField(node[seg.name], f, i + 1)
      }
      if (node instanceof Map) {
        const k = mapKey(node, seg.name)
        if (k === undefined) return 0
        return last ? setMapField(node, k, f) : applyField(node.get(k), f, i + 1)
      }
      return 0
    }
    case 'anyKey': {
      let count = 0
      if (isPlainObject(node)) {
        for (const k of Object.keys(node)) count += last ? setField(node, k, f) : applyField(node[k], f, i + 1)
      } else if (node instanceof Map) {
        for (const k of [...node.keys()]) count += last ? setMapField(node, k, f) : applyField(node.get(k), f, i + 1)
      }
      return count
    }
    case 'each': {
      if (!Array.isArray(node)) return 0
      if (last) {
        const len = node.length
        if (f.action === 'drop') { node.length = 0; return len }
        for (let k = 0; k < len; k++) node[k] = f.act(node[k])
        return len
      }
      let count = 0
      for (let k = 0; k < node.length; k++) count += applyField(node[k], f, i + 1)
      return count
    }
    case 'index': {
      if (!Array.isArray(node) || seg.i >= node.length) return 0
      if (!last) return applyField(node[seg.i], f, i + 1)
      const v = f.act(node[seg.i])
      if (v === DROP) node.splice(seg.i, 1)
      else node[seg.i] = v
      return 1
    }
  }
}

function setField(o: Record<string, unknown>, k: string, f: CompiledField): number {
  const v = f.act(o[k])
  if (v === DROP) delete o[k]
  else setOwn(o, k, v)
  return 1
}

function setMapField(m: Map<unknown, unknown>, k: unknown, f: CompiledField): number {
  const v = f.act(m.get(k))
  if (v === DROP) m.delete(k)
  else m.set(k, v)
  return 1
}

/** Runs the detectors over every string value under `root` (iteratively: deep payloads cannot overflow the stack). */
function scanStrings(root: unknown, d: CompiledDetectors, counts: MaskCounts): number {
  if (!isContainer(root)) return 0
  let changed = 0
  // parallel stacks (no tuple per container): the walk runs for every message
  const stack: Container[] = [root as Container]
  const depths: number[] = [1]
  while (stack.length > 0) {
    const c = stack.pop()!
    const depth = depths.pop()! + 1
    if (Array.isArray(c)) {
      for (let k = 0; k < c.length; k++) {
        const v = c[k]
        if (typeof v === 'string') {
          const out = d.maskInto(v, counts)
          if (out === undefined) continue
          c[k] = out
          changed++
        } else if (isContainer(v)) {
          if (depth > MAX_DEPTH) throw new ParseError(`nested deeper than ${MAX_DEPTH} levels`)
          stack.push(v as Container); depths.push(depth)
        }
      }
    } else if (c instanceof Map) {
      for (const [k, v] of c) {
        if (typeof v === 'string') {
          const out = d.maskInto(v, counts)
          if (out === undefined) continue
          c.set(k, out)
          changed++
        } else if (isContainer(v)) {
          if (depth > MAX_DEPTH) throw new ParseError(`nested deeper than ${MAX_DEPTH} levels`)
          stack.push(v as Container); depths.push(depth)
        }
      }
    } else {
      const o = c as Record<string, unknown>
      // JSON.parse and msgpackr build plain objects: for-in sees exactly their own keys
      for (const k in o) {
        const v = o[k]
        if (typeof v === 'string') {
          const out = d.maskInto(v, counts)
          if (out === undefined) continue
          setOwn(o, k, out)
          changed++
        } else if (isContainer(v)) {
          if (depth > MAX_DEPTH) throw new ParseError(`nested deeper than ${MAX_DEPTH} levels`)
          stack.push(v as Container); depths.push(depth)
        }
      }
    }
  }
  return changed
}

function isContainer(v: unknown): boolean {
  return v !== null && typeof v === 'object' && (Array.isArray(v) || v instanceof Map || Object.getPrototypeOf(v) === Object.prototype)
}
