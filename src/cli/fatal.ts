import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import { describeFault } from '../broker/isolate.js'

export interface FatalOptions {
  readonly logger: Logger
  readonly journal?: Journal
  /** how long the journal may take to commit what it holds before the exit */
  readonly flushTimeoutMs?: number
  readonly exit?: (code: number) => void
}

/**
 * A truly fatal error — one no client's packet was being handled for (client faults are
 * caught in src/broker/isolate.ts) — ends the process with exit 1, so the supervisor
 * (systemd Restart=, balena) restarts the gateway, which resumes from its LMDB state.
 * Before that: logged, journaled, and the journal flushed as far as it goes in time.
 * Returns a function that removes the handlers.
 */
export function installFatalHandlers(o: FatalOptions): () => void {
  const exit = o.exit ?? ((code: number) => process.exit(code))
  let dying = false
  const onFatal = (err: unknown, origin: string): void => {
    // a second fatal error while flushing: no more waiting
    if (dying) return exit(1)
    dying = true
    const d = describeFault(err)
    // the stack's frames, not its first line: an error message may quote a payload
    const stack = err instanceof Error ? err.stack?.split('\n').slice(1, 9).join('\n') : undefined
    o.logger.fatal({ event: 'fatal', origin, ...d, stack }, 'fatal error: exiting so the supervisor restarts the gateway')
    const timer = setTimeout(() => exit(1), o.flushTimeoutMs ?? 2000)
    timer.unref()
    try {
      o.journal?.record({ type: 'fatal', reason: origin, ...d })
    } catch { /* the journal may be what failed */ }
    Promise.resolve(o.journal?.flush()).catch(() => {}).finally(() => { clearTimeout(timer); exit(1) })
  }
  const onException = (err: Error, origin: string): void => onFatal(err, origin)
  process.on('uncaughtException', onException)
  return () => { process.off('uncaughtException', onException) }
}
