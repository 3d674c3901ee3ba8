import type { IncomingMessage } from 'node:http'
import type { AdminServer } from './server.js'
import { sendJson } from './server.js'
import type { BearerResult } from './auth.js'
import type { GatewayCore } from '../gateway.js'
import { matchesApprovers } from '../hold/principal.js'
import type { ApproverSpec } from '../hold/types.js'

export interface SessionsApiDeps {
  readonly core: GatewayCore
  readonly verify: (req: IncomingMessage) => Promise<BearerResult>
  readonly admins: ApproverSpec
}

/** Live sessions (list, kick) and the running policy revision: admins only. */
export function registerSessionRoutes(admin: AdminServer, d: SessionsApiDeps): void {
  const adminOnly = (fn: (res: import('node:http').ServerResponse, by: string, params: Readonly<Record<string, string>>) => void) =>
    async (req: IncomingMessage, res: import('node:http').ServerResponse, params: Readonly<Record<string, string>>) => {
      const who = await d.verify(req)
      if (!who.ok) return sendJson(res, 401, { error: 'unauthorized', reason: who.reason })
      if (!matchesApprovers(d.admins, who.principal)) return sendJson(res, 403, { error: 'forbidden' })
      fn(res, who.principal.sub, params)
    }
  admin.route('GET', '/api/sessions', adminOnly((res) => sendJson(res, 200, { sessions: d.core.listSessions() })))
  admin.route('DELETE', '/api/sessions/:clientId', adminOnly((res, by, p) => {
    const ok = d.core.kick(p.clientId!, by)
    sendJson(res, ok ? 200 : 404, ok ? { kicked: p.clientId } : { error: 'not_found' })
  }))
  admin.route('GET', '/api/policy', adminOnly((res) => sendJson(res, 200, { revision: d.core.policy.revision })))
}
