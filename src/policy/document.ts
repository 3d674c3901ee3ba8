/** A rule as written in a policy file (after schema validation). */
export interface RuleSpec {
  readonly id: string
  readonly description?: string
  /** monitor: refusals and holds of this rule are journaled as would_* and not enforced */
  readonly mode?: 'enforce' | 'monitor'
  readonly effect: 'allow' | 'deny'
  readonly actions: readonly ('publish' | 'subscribe' | 'connect')[]
  readonly topics?: readonly string[]
  readonly exact?: boolean
  readonly who?: WhoSpec
  readonly qos?: readonly number[]
  readonly retain?: boolean
  readonly maxPayloadBytes?: number | string
  readonly rate?: number | string
  readonly payload?: { readonly detectors?: readonly string[]; readonly matches?: string | readonly string[] }
  readonly approval?: { readonly approvers: WhoSpec; readonly quorum?: number; readonly ttl?: number | string; readonly selfApproval?: boolean }
}

export interface WhoSpec {
  readonly groups?: readonly string[]
  readonly kinds?: readonly string[]
  readonly subs?: readonly string[]
}

/** Where a rule came from, for error messages. */
export interface RuleSource {
  readonly file: string
  readonly index: number
}

/** All policy files of a directory merged: rules in file-name order, masks likewise. */
export interface PolicyDocument {
  readonly rules: readonly RuleSpec[]
  readonly sources: readonly RuleSource[]
  readonly masks: readonly unknown[]
  readonly files: readonly string[]
  /** sha256 over the files' names and contents (first 16 hex digits) */
  readonly revision: string
}
