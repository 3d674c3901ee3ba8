import { compileDetectors } from '../mask/detectors.js'
import type { PayloadFormat } from './types.js'

/** Format index into FORMATS: 0 json, 1 msgpack, 2 text, 3 binary. */
export type FormatIndex = 0 | 1 | 2 | 3

/**
 * A cheap guess from the first and last byte (the publish path calls it): JSON starts with
 * `{` or `[` (after whitespace), MessagePack with a map or array marker, text is printable
 * at both ends; anything else is binary. Not validation — the masking stage parses.
 */
export function formatOf(p: Uint8Array): FormatIndex {
  const n = p.length
  if (n === 0) return 2
  let i = 0
  while (i < n && i < 8 && (p[i] === 0x20 || p[i] === 0x0a || p[i] === 0x0d || p[i] === 0x09)) i++
  const b = p[i] ?? 0x20
  if (b === 0x7b || b === 0x5b) return 0
  if (i === 0 && ((b >= 0x80 && b <= 0x8f) || (b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd || b === 0xde || b === 0xdf)) return 1
  const last = p[n - 1]!
  return printable(b) && printable(last) ? 2 : 3
}

function printable(b: number): boolean {
  // ASCII printable, tab/newline, or part of a UTF-8 sequence (0xc2–0xf4 lead, continuation bytes)
  return (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x80 && b <= 0xbf) || (b >= 0xc2 && b <= 0xf4)
}

export const FORMAT_NAMES: readonly PayloadFormat[] = ['json', 'msgpack', 'text', 'binary']

// prompt / completion shapes of the common model APIs and agent frameworks
const AGENT_SHAPE = /"(?:role)"\s*:\s*"(?:system|user|assistant|tool)"|"(?:prompt|completion|messages|choices|tool_calls|function_call|max_tokens|stop_reason)"\s*:/
const SECRETS = compileDetectors(['secret'])
const MAX_SCAN = 64 * 1024

/** Why a payload looks like model or agent traffic, or undefined. Sampled by the caller. */
export function agentSignal(p: Uint8Array): string | undefined {
  if (p.length === 0 || p.length > MAX_SCAN) return undefined
  const text = Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('utf8')
  if (AGENT_SHAPE.test(text)) return 'prompt/completion shaped payload'
  const hit = SECRETS.firstMatch(text)
  if (hit !== undefined && /(?<![\w-])sk-|AIza|xai-|hf_/.test(text)) return 'model-provider secret in payload'
  return undefined
}
