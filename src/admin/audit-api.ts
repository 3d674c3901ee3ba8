import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AdminServer } from './server.js'
import { sendJson } from './server.js'
import type { BearerResult } from './auth.js'
import { matchesApprovers } from '../hold/principal.js'
import type { ApproverSpec } from '../hold/types.js'
import { openJournalReader } from '../journal/reader.js'
import { decodeRecord } from '../journal/codec.js'
import { matchesQuery, type RecordQuery } from '../journal/query.js'
import { verifyJournal } from '../journal/verify.js'
import { readGatewayPublicKey } from '../journal/signing.js'
import type { JournalRecord, RecordType } from '../journal/types.js'
import { parseDuration } from '../config/units.js'

export interface AuditApiDeps {
  readonly dataDir: string
  readonly gatewayId: string
  readonly verify: (req: IncomingMessage) => Promise<BearerResult>
  readonly admins: ApproverSpec
  /** false when the gateway runs without the LMDB journal (embedding, tests) */
  readonly available: () => boolean
}

const MAX_LIMIT = 1000

/** Payload bytes stay out of API answers: `bytes` says how large, `audit export` gives them to auditors. */
function view(r: JournalRecord): Record<string, unknown> {
  const { payload, sealed, ...rest } = r as JournalRecord & { payload?: unknown; sealed?: unknown }
  return { ...rest, at: new Date(r.ts).toISOString(), ...(payload !== undefined ? { hasPayload: true } : {}), ...(sealed !== undefined ? { sealed: true } : {}) }
}

/**
 * `GET /api/audit?since=1h&type=publish_denied&clientId=…&sub=…&topic=site/#&rule=…&after=SEQ&limit=100`
 * (newest first, or oldest first after a seq — the console's live tail) and
 * `GET /api/audit/verify` (hash chain and checkpoint signatures). Admins only.
 */
export function registerAuditRoutes(admin: AdminServer, d: AuditApiDeps): void {
  const guard = (fn: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => async (req: IncomingMessage, res: ServerResponse) => {
    const who = await d.verify(req)
    if (!who.ok) return sendJson(res, 401, { error: 'unauthorized', reason: who.reason })
    if (!matchesApprovers(d.admins, who.principal)) return sendJson(res, 403, { error: 'forbidden' })
    if (!d.available()) return sendJson(res, 501, { error: 'journal_unavailable' })
    await fn(req, res)
  }
  admin.route('GET', '/api/audit', guard(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://admin')
    const q = u.searchParams
    const sinceRaw = q.get('since')
    const since = sinceRaw ? (/^\d{4}-/.test(sinceRaw) ? Date.parse(sinceRaw) : Date.now() - (parseDuration(sinceRaw) ?? NaN)) : undefined
    if (since !== undefined && !Number.isFinite(since)) return sendJson(res, 400, { error: 'since: a duration like 1h or an ISO time' })
    const limit = Math.min(MAX_LIMIT, Math.max(1, Number(q.get('limit') ?? 100) || 100))
    const after = q.get('after') !== null ? Number(q.get('after')) : undefined
    const query: RecordQuery = {
      since, types: q.getAll('type').length ? (q.getAll('type') as RecordType[]) : undefined,
      clientId: q.get('clientId') ?? undefined, sub: q.get('sub') ?? undefined, session: q.get('session') ?? undefined,
      topic: q.get('topic') ?? undefined, rule: q.get('rule') ?? undefined,
    }
    const reader = openJournalReader(d.dataDir)
    try {
      const out: Record<string, unknown>[] = []
      const range = after !== undefined && Number.isFinite(after) ? reader.dbs.records.getRange({ start: after + 1 }) : reader.dbs.records.getRange({ reverse: true })
      for (const { value } of range) {
        const r = decodeRecord(value)
        if (after === undefined && since !== undefined && r.ts < since) break
        if (!matchesQuery(r, query)) continue
        out.push(view(r))
        if (out.length >= limit) break
      }
      sendJson(res, 200, { records: out, last: reader.last() ?? 0 })
    } finally {
      await reader.close()
    }
  }))
  admin.route('GET', '/api/audit/verify', guard(async (_req, res) => {
    const reader = openJournalReader(d.dataDir)
    try {
      const v = await verifyJournal(reader.dbs, readGatewayPublicKey(d.dataDir), d.gatewayId)
      sendJson(res, v.ok ? 200 : 409, v)
    } finally {
      await reader.close()
    }
  }))
}
