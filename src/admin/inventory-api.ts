import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AdminServer } from './server.js'
import { readJson, sendJson } from './server.js'
import type { BearerResult } from './auth.js'
import { matchesApprovers } from '../hold/principal.js'
import type { ApproverSpec } from '../hold/types.js'
import { entryView, FLAG_NAMES, type FlagName, type Inventory } from '../inventory/index.js'

export interface InventoryApiDeps {
  readonly inventory: Inventory | undefined
  readonly verify: (req: IncomingMessage) => Promise<BearerResult>
  readonly admins: ApproverSpec
}

/**
 * `GET /api/inventory[?type=identity|client&flagged=1]` — every identity and clientId seen,
 * newest activity first; `POST /api/inventory/:type/:id/flags/:flag/ack` acknowledges a
 * shadow flag (journaled with who). Admins only.
 */
export function registerInventoryRoutes(admin: AdminServer, d: InventoryApiDeps): void {
  const guard = (fn: (req: IncomingMessage, res: ServerResponse, inv: Inventory, by: string, params: Readonly<Record<string, string>>) => Promise<void> | void) =>
    async (req: IncomingMessage, res: ServerResponse, params: Readonly<Record<string, string>>) => {
      const who = await d.verify(req)
      if (!who.ok) return sendJson(res, 401, { error: 'unauthorized', reason: who.reason })
      if (!matchesApprovers(d.admins, who.principal)) return sendJson(res, 403, { error: 'forbidden' })
      if (!d.inventory) return sendJson(res, 501, { error: 'inventory_disabled' })
      await fn(req, res, d.inventory, who.principal.sub, params)
    }
  admin.route('GET', '/api/inventory', guard((req, res, inv) => {
    const q = new URL(req.url ?? '/', 'http://admin').searchParams
    const type = q.get('type')
    const flagged = q.get('flagged') === '1' || q.get('flagged') === 'true'
    const entries = inv.entries()
      .filter((e) => (type ? e.type === type : true) && (!flagged || inv.hasOpenFlags(e)))
      .sort((a, b) => b.lastSeen - a.lastSeen)
      .map(entryView)
    sendJson(res, 200, { entries })
  }))
  admin.route('POST', '/api/inventory/:type/:id/flags/:flag/ack', guard(async (req, res, inv, by, p) => {
    await readJson(req).catch(() => undefined)
    const type = p.type
    if (type !== 'identity' && type !== 'client') return sendJson(res, 400, { error: 'type: identity or client' })
    if (!(FLAG_NAMES as readonly string[]).includes(p.flag!)) return sendJson(res, 400, { error: `flag: one of ${FLAG_NAMES.join(', ')}` })
    const ok = inv.acknowledge(type, p.id!, p.flag as FlagName, by)
    sendJson(res, ok ? 200 : 404, ok ? { acknowledged: p.flag, type, id: p.id, by } : { error: 'no such open flag' })
  }))
}
