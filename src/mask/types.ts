import type { DetectorName } from './detectors.js'

export type MaskFormat = 'json' | 'msgpack' | 'text' | 'auto'
export type OnParseError = 'block' | 'pass' | 'redact-all'
export type FieldActionName = 'redact' | 'hash' | 'last4' | 'round' | 'drop' | 'replace'

/** One `fields:` entry of a mask (SPEC §5). */
export interface FieldSpec {
  /** dotted path; `[*]` every array element, `*` every key, `[N]` one element */
  readonly path: string
  readonly action: FieldActionName
  /** round: decimal digits kept (default 0) */
  readonly digits?: number
  /** replace: the value written instead */
  readonly value?: unknown
}

/** Who receives the raw payload: any listed condition that holds (group OR kind OR sub). */
export interface UnmaskedFor {
  readonly groups?: readonly string[]
  readonly kinds?: readonly string[]
  readonly subs?: readonly string[]
}

/** A `masks:` entry as loaded and validated from a policy file. */
export interface MaskSpec {
  readonly id: string
  readonly description?: string
  readonly topics: readonly string[]
  readonly format: MaskFormat
  readonly fields: readonly FieldSpec[]
  readonly detectors: readonly DetectorName[]
  readonly unmaskedFor?: UnmaskedFor
  /** overrides masking.onParseError for this mask */
  readonly onParseError?: OnParseError
  /** file the mask came from, for messages */
  readonly file?: string
}

/** What masking did to one payload: counts only, never values (safe to journal). */
export type MaskCounts = Record<string, number>

export type MaskOutcome =
  | { readonly ok: true; readonly payload: Buffer; readonly masks: readonly string[]; readonly counts: MaskCounts; readonly changed: boolean }
  /** a mask could not parse the payload and its onParseError is block */
  | { readonly ok: false; readonly reason: 'unparseable_payload'; readonly mask: string; readonly detail: string }
