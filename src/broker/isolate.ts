import type { AedesOptions, Client } from 'aedes'
import { isEwError } from '../errors.js'

export type HookName = 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward' | 'event'
/** `client`: the connection whose packet was being handled (for authorizeForward: the subscriber) */
export type FaultHandler = (client: Client | null, hook: HookName, err: unknown) => void

/**
 * Crash isolation: Aedes calls its hooks synchronously from a socket's data handler, so an
 * exception in one (a mask, a policy decision) would escape to the process and end every
 * connection. Each hook is wrapped: a throw is reported to `onFault` (which disconnects that
 * client and journals it) and the hook answers "refused". No allocation on the normal path.
 */
export function isolateHooks(hooks: Partial<AedesOptions>, onFault: FaultHandler): Partial<AedesOptions> {
  const out: Partial<AedesOptions> = { ...hooks }
  const { preConnect, authenticate, authorizePublish, authorizeSubscribe, authorizeForward } = hooks
  if (preConnect) {
    out.preConnect = (client, packet, cb) => {
      try { preConnect(client, packet, cb) } catch (err) { onFault(client, 'preConnect', err); cb(faultError('preConnect'), false) }
    }
  }
  if (authenticate) {
    out.authenticate = (client, username, password, done) => {
      // returnCode 3: server unavailable, the client may retry; never an admission
      try { authenticate(client, username, password, done) } catch (err) { onFault(client, 'authenticate', err); done(Object.assign(faultError('authenticate'), { returnCode: 3 }), false) }
    }
  }
  if (authorizePublish) {
    out.authorizePublish = (client, packet, cb) => {
      try { authorizePublish(client, packet, cb) } catch (err) { onFault(client, 'authorizePublish', err); cb(faultError('authorizePublish')) }
    }
  }
  if (authorizeSubscribe) {
    out.authorizeSubscribe = (client, sub, cb) => {
      try { authorizeSubscribe(client, sub, cb) } catch (err) { onFault(client, 'authorizeSubscribe', err); cb(faultError('authorizeSubscribe'), null) }
    }
  }
  if (authorizeForward) {
    out.authorizeForward = (client, packet) => {
      try { return authorizeForward(client, packet) } catch (err) { onFault(client, 'authorizeForward', err); return null }
    }
  }
  return out
}

/** Runs an event handler the gateway registered on Aedes, with the same isolation. */
export function guarded<A>(client: Client | null, onFault: FaultHandler, fn: (a: A) => void, a: A): void {
  try { fn(a) } catch (err) { onFault(client, 'event', err) }
}

function faultError(hook: HookName): Error {
  // `fault`: already journaled by onFault, not again as a client error
  return Object.assign(new Error(`internal error in ${hook}`), { fault: true })
}

export function isFaultError(err: unknown): boolean {
  return (err as { fault?: unknown } | null)?.fault === true
}

/**
 * What may be journaled about an unexpected error: its type, code and where it was thrown.
 * Not the message: a parser's message can quote the payload (JSON.parse does), and payloads
 * may carry what masks exist to hide. An EwError's message is ours and carries no secrets.
 */
export function describeFault(err: unknown): { error: string; code?: string; at?: string } {
  if (!(err instanceof Error)) return { error: typeof err }
  const code = (err as { code?: unknown }).code
  // the first frame in a file of ours or a dependency (not Node internals, not this wrapper)
  let at: string | undefined
  for (const l of err.stack?.split('\n') ?? []) {
    const m = /^\s+at .*?([^/\\( ]+):(\d+):\d+\)?\s*$/.exec(l)
    if (m && !l.includes('node:') && !/[/\\]broker[/\\]isolate\.[jt]s:/.test(l)) { at = `${m[1]}:${m[2]}`; break }
  }
  return { error: isEwError(err) ? `${err.name}: ${err.message}`.slice(0, 300) : err.name, ...(typeof code === 'string' ? { code } : {}), ...(at ? { at } : {}) }
}
