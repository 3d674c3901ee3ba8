import type { IncomingMessage } from 'node:http'
import type { Authenticator } from '../identity/authenticate.js'
import type { Principal } from '../hold/types.js'

export type BearerResult = { ok: true; principal: Principal } | { ok: false; status: 401; reason: string }

/**
 * Admin API callers authenticate like MQTT clients: a JWT (here as `Authorization: Bearer`)
 * verified by the same Authenticator, so approvers are people with tokens from the same issuer.
 */
export function bearerVerifier(auth: Authenticator) {
  return async (req: IncomingMessage): Promise<BearerResult> => {
    const h = req.headers.authorization
    if (!h || !/^Bearer\s+/i.test(h)) return { ok: false, status: 401, reason: 'missing bearer token' }
    const token = h.replace(/^Bearer\s+/i, '').trim()
    const r = await auth.authenticate({ clientId: '', clean: true, password: Buffer.from(token, 'latin1'), listener: 'admin', remoteAddress: req.socket.remoteAddress })
    if (!r.ok) return { ok: false, status: 401, reason: r.failure.reason }
    const { sub, kind, groups } = r.identity
    return { ok: true, principal: { sub, kind, groups } }
  }
}
