import { isEwError } from '../errors.js'
import { masksOfEntries, masksOfFile } from './load.js'
import { MaskPlan } from './plan.js'
import type { OnParseError } from './types.js'

/** A masks problem in the shape of the policy linter's issues (src/policy/load.ts LintIssue). */
export interface MaskLintIssue {
  readonly severity: 'error'
  readonly file: string
  readonly line?: number
  readonly key?: string
  readonly message: string
}

/** For `edgewarden policy lint`: the `masks:` problems of one policy file (the first one found). */
export function lintMaskFile(file: string, text: string): MaskLintIssue[] {
  try {
    masksOfFile(file, text)
    return []
  } catch (err) {
    if (!isEwError(err)) throw err
    const d = err.details as { line?: number; key?: string }
    const message = err.message.replace(/^[^:]+(:\d+)?: /, '').replace(d.key ? `${d.key}: ` : '', '')
    return [{ severity: 'error', file, line: d.line, key: d.key, message }]
  }
}

/**
 * For `edgewarden policy test` cases with `masked:`: the fully masked view (nobody's
 * unmaskedFor) of `payload` published on `topic` under the merged `masks` entries of a policy
 * document. An object payload is sent as JSON and the view comes back parsed; a string as
 * UTF-8 text. `hash` tokens use `hashKey` (tests pass a fixed one).
 */
export function maskedViewFor(masks: readonly unknown[], topic: string, payload: unknown, opts: { hashKey?: Buffer; onParseError?: OnParseError } = {}): { ok: true; view: unknown; masks: readonly string[] } | { ok: false; reason: string } {
  const specs = masksOfEntries(masks, 'policy')
  const plan = new MaskPlan(specs, { hashKey: opts.hashKey ?? Buffer.from('edgewarden-policy-test'), onParseError: opts.onParseError ?? 'block' })
  const isText = typeof payload === 'string'
  const bytes = isText ? Buffer.from(payload, 'utf8') : Buffer.from(JSON.stringify(payload ?? null), 'utf8')
  const r = plan.apply(plan.match(topic), bytes)
  if (!r.ok) return { ok: false, reason: `${r.reason} (mask ${r.mask}: ${r.detail})` }
  const text = r.payload.toString('utf8')
  if (isText) return { ok: true, view: text, masks: r.masks }
  try {
    return { ok: true, view: JSON.parse(text) as unknown, masks: r.masks }
  } catch {
    return { ok: true, view: text, masks: r.masks }
  }
}
