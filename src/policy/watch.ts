import { existsSync, watch, type FSWatcher } from 'node:fs'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import { formatIssue, loadPolicyDir } from './load.js'
import type { CompiledPolicy } from './compile.js'
import type { PolicyDocument } from './document.js'

export interface PolicyWatchOptions {
  readonly dir: string
  readonly logger: Logger
  readonly journal: Journal
  /** the revision running now */
  current(): string
  compile(doc: PolicyDocument): CompiledPolicy
  /** swaps the running policy (one reference) */
  apply(policy: CompiledPolicy): void
  readonly debounceMs?: number
}

export interface PolicyWatcher {
  /** re-reads the dir now (what a file change triggers); 'unchanged' too when a fleet bundle is in force */
  reload(): 'applied' | 'unchanged' | 'rejected' | 'missing'
  close(): void
}

/**
 * Hot reload: fs.watch on the policy dir, debounced (editors write in several steps).
 * A set that does not lint or compile leaves the running policy untouched and is logged
 * and journaled as `policy_rejected`; a new good one is swapped in and journaled as
 * `policy_applied` with its revision.
 */
export function watchPolicyDir(o: PolicyWatchOptions): PolicyWatcher {
  let timer: NodeJS.Timeout | undefined
  let fsw: FSWatcher | undefined
  // the revision this dir put in force; another source (a fleet bundle) may have replaced it since
  let mine = o.current()
  const reload: PolicyWatcher['reload'] = () => {
    const previous = o.current()
    if (previous !== mine) {
      o.logger.warn({ event: 'policy_dir_ignored', dir: o.dir, policyRev: previous }, 'policy dir changed, but another source (fleet bundle) is in force: not applied')
      return 'unchanged'
    }
    let policy: CompiledPolicy
    try {
      const loaded = loadPolicyDir(o.dir)
      if (!loaded) {
        o.logger.error({ event: 'policy_rejected', dir: o.dir, policyRev: previous }, 'policy dir disappeared: keeping the running policy')
        o.journal.record({ type: 'policy_rejected', reason: 'policy dir missing', policyRev: previous })
        return 'missing'
      }
      if (loaded.doc.revision === previous) return 'unchanged'
      for (const w of loaded.warnings) o.logger.warn({ event: 'policy_warning' }, formatIssue(w))
      policy = o.compile(loaded.doc)
    } catch (err) {
      const reason = (err as Error).message
      o.logger.error({ event: 'policy_rejected', dir: o.dir, policyRev: previous, err: reason }, 'policy change rejected: keeping the running policy')
      o.journal.record({ type: 'policy_rejected', reason: reason.slice(0, 500), policyRev: previous })
      return 'rejected'
    }
    o.apply(policy)
    mine = policy.revision
    o.logger.info({ event: 'policy_applied', policyRev: policy.revision, previous, rules: policy.ruleCount }, 'policy applied')
    o.journal.record({ type: 'policy_applied', source: 'dir', policyRev: policy.revision, previous, count: policy.ruleCount, files: policy.document.files })
    return 'applied'
  }
  if (existsSync(o.dir)) {
    try {
      fsw = watch(o.dir, { persistent: false }, () => {
        if (timer) clearTimeout(timer)
        timer = setTimeout(() => {
          timer = undefined
          reload()
        }, o.debounceMs ?? 150)
      })
      fsw.on('error', (err) => o.logger.error({ event: 'policy_watch_error', err: err.message }, 'policy dir watch failed; hot reload stopped'))
    } catch (err) {
      o.logger.error({ event: 'policy_watch_error', err: (err as Error).message }, 'cannot watch the policy dir; hot reload off')
    }
  } else {
    o.logger.warn({ event: 'policy_watch_off', dir: o.dir }, 'policy dir does not exist: nothing to watch')
  }
  return {
    reload,
    close() {
      if (timer) clearTimeout(timer)
      fsw?.close()
    },
  }
}
