import type { Config } from '../config/types.js'
import type { Logger } from '../logger.js'
import type { Clock } from '../clock.js'
import type { Journal } from '../journal/types.js'
import { compileDetectors, type DetectorName } from '../mask/detectors.js'
import { CompiledPolicy, type CompileOptions } from './compile.js'
import { formatIssue, loadPolicyDir } from './load.js'
import type { PolicyDocument } from './document.js'
import { watchPolicyDir, type PolicyWatcher } from './watch.js'

export type * from './types.js'
export type { PolicyDocument, RuleSpec } from './document.js'
export { isReservedTopic } from './reserved.js'
export { CompiledPolicy } from './compile.js'
export { lintPolicyFiles, loadPolicyDir, readPolicyDir, formatIssue, type LintIssue } from './load.js'
export { policySchema } from './schema.js'

/** The content-deny detectors come from the masking stage's detector set. */
export const policyDetectors: CompileOptions['detectors'] = (names) => compileDetectors(names as readonly DetectorName[])

/** An empty policy: nothing but default deny (and the default connect rule). */
export function emptyPolicyDocument(revision = 'none'): PolicyDocument {
  return { rules: [], sources: [], masks: [], files: [], revision }
}

export function compilePolicy(doc: PolicyDocument, opts: CompileOptions = {}): CompiledPolicy {
  return new CompiledPolicy(doc, { detectors: policyDetectors, ...opts })
}

/**
 * Loads and compiles `policies.dir`. An invalid policy throws EW_POLICY_INVALID (exit 2).
 * A missing dir fails closed: no rules, so every publish and subscribe is denied.
 */
export async function loadPolicyEngine(config: Config, logger: Logger, opts: { clock?: Clock } = {}): Promise<CompiledPolicy> {
  const dir = config.policies.dir
  const loaded = loadPolicyDir(dir)
  if (!loaded) {
    logger.warn({ event: 'policy_missing', dir }, `policy dir ${dir} does not exist: DENYING every publish and subscribe (fail closed) until policy files appear there`)
    return compilePolicy(emptyPolicyDocument(), opts)
  }
  for (const w of loaded.warnings) logger.warn({ event: 'policy_warning' }, formatIssue(w))
  const policy = compilePolicy(loaded.doc, opts)
  logger.info({ event: 'policy_loaded', dir, policyRev: policy.revision, rules: policy.ruleCount, files: loaded.doc.files }, 'policy loaded')
  return policy
}

/** Hot reload of `policies.dir` when `policies.watch` is on; `apply` swaps the running policy. */
export function startPolicyWatch(config: Config, deps: { logger: Logger; journal: Journal; clock?: Clock; current(): string; apply(p: CompiledPolicy): void }): PolicyWatcher | undefined {
  if (!config.policies.watch) return undefined
  return watchPolicyDir({ dir: config.policies.dir, logger: deps.logger, journal: deps.journal, current: deps.current, apply: deps.apply, compile: (doc) => compilePolicy(doc, { clock: deps.clock }) })
}
