import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AdminServer } from './server.js'
import { readJson, sendJson } from './server.js'
import type { BearerResult } from './auth.js'
import type { Approvals, ApprovalError } from '../hold/approvals.js'
import type { Grants } from '../hold/grants.js'
import { matchesApprovers } from '../hold/principal.js'
import type { ApproverSpec, HeldMessage, Principal } from '../hold/types.js'
import { parseDuration } from '../config/units.js'

export interface ApprovalsApiDeps {
  readonly approvals: Approvals
  readonly grants: Grants
  readonly verify: (req: IncomingMessage) => Promise<BearerResult>
  /** who may create and revoke grants */
  readonly grantors: ApproverSpec
  /** the masked view of a held payload (masks with `unmaskedFor` keep the raw one in the hold) */
  readonly preview?: PreviewMask
}

export type PreviewMask = (topic: string, payload: Buffer) => Buffer

const STATUS: Record<ApprovalError, number> = { not_found: 404, not_approver: 403, self_approval: 403, already_approved: 409, not_pending: 409 }

/**
 * A held message as approvers see it: what, who, until when — the payload as a bounded
 * preview of its masked view (the preview also goes to the webhook and the pending topic).
 */
export function holdView(h: HeldMessage, mask?: PreviewMask): object {
  const shown = mask ? mask(h.topic, Buffer.from(h.payload)) : Buffer.from(h.payload)
  const preview = shown.subarray(0, 512)
  const text = preview.toString('utf8')
  const printable = !/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text)
  return {
    id: h.id, topic: h.topic, qos: h.qos, retain: h.retain, bytes: h.payload.length,
    preview: printable ? text : preview.toString('base64'), previewEncoding: printable ? 'utf8' : 'base64',
    requester: { sub: h.requester.sub, clientId: h.requester.clientId, kind: h.requester.kind },
    rule: h.ruleId, quorum: h.approval.quorum, approvals: h.approvals.map((a) => a.sub),
    createdAt: new Date(h.createdAt).toISOString(), expiresAt: new Date(h.expiresAt).toISOString(), state: h.state,
  }
}

export function registerApprovalRoutes(admin: AdminServer, d: ApprovalsApiDeps): void {
  const authed = (fn: (req: IncomingMessage, res: ServerResponse, p: Principal, params: Readonly<Record<string, string>>) => Promise<void>) =>
    async (req: IncomingMessage, res: ServerResponse, params: Readonly<Record<string, string>>) => {
      const who = await d.verify(req)
      if (!who.ok) return sendJson(res, 401, { error: 'unauthorized', reason: who.reason })
      await fn(req, res, who.principal, params)
    }
  const body = async (req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> => {
    try {
      const b = await readJson(req)
      return (b && typeof b === 'object' && !Array.isArray(b) ? b : {}) as Record<string, unknown>
    } catch {
      sendJson(res, 400, { error: 'body must be a JSON object of at most 64 KiB' })
      return undefined
    }
  }

  admin.route('GET', '/api/approvals', authed(async (_req, res, p) => {
    const visible = d.approvals.pending().filter((h) => matchesApprovers(h.approval.approvers, p) || h.requester.sub === p.sub)
    sendJson(res, 200, { approvals: visible.map((h) => holdView(h, d.preview)) })
  }))
  for (const verb of ['approve', 'reject'] as const) {
    admin.route('POST', `/api/approvals/:id/${verb}`, authed(async (req, res, p, params) => {
      const b = await body(req, res)
      if (!b) return
      const r = verb === 'approve' ? await d.approvals.approve(params.id!, p) : await d.approvals.reject(params.id!, p, typeof b.reason === 'string' ? b.reason : undefined)
      if (!r.ok) return sendJson(res, STATUS[r.error], { error: r.error })
      sendJson(res, 200, { ...holdView(r.hold, d.preview), delivered: r.delivered })
    }))
  }

  admin.route('GET', '/api/grants', authed(async (_req, res, p) => {
    const all = d.grants.list()
    sendJson(res, 200, { grants: matchesApprovers(d.grantors, p) ? all : all.filter((g) => g.sub === p.sub) })
  }))
  admin.route('POST', '/api/grants', authed(async (req, res, p) => {
    if (!matchesApprovers(d.grantors, p)) return sendJson(res, 403, { error: 'not_approver' })
    const b = await body(req, res)
    if (!b) return
    const actions = Array.isArray(b.actions) ? b.actions : []
    const topics = Array.isArray(b.topics) ? b.topics : []
    const ttlMs = typeof b.ttl === 'string' || typeof b.ttl === 'number' ? parseDuration(b.ttl) : undefined
    const problems: string[] = []
    if (typeof b.sub !== 'string' || !b.sub) problems.push('sub: required string')
    if (!actions.length || !actions.every((a) => a === 'publish' || a === 'subscribe')) problems.push('actions: publish and/or subscribe')
    if (!topics.length || !topics.every((t) => typeof t === 'string' && t.length > 0 && t.length < 1024 && !/#./.test(t))) problems.push('topics: valid MQTT filters')
    if (!ttlMs || ttlMs <= 0 || ttlMs > 7 * 86_400_000) problems.push('ttl: a duration up to 7d')
    if (problems.length) return sendJson(res, 400, { error: 'invalid grant', problems })
    const g = await d.grants.grant({ sub: b.sub as string, actions: actions as ('publish' | 'subscribe')[], topics: topics as string[], ttlMs: ttlMs!, reason: typeof b.reason === 'string' ? b.reason : undefined }, p)
    sendJson(res, 201, g)
  }))
  admin.route('DELETE', '/api/grants/:id', authed(async (_req, res, p, params) => {
    if (!matchesApprovers(d.grantors, p)) return sendJson(res, 403, { error: 'not_approver' })
    const ok = await d.grants.revoke(params.id!, p)
    sendJson(res, ok ? 200 : 404, ok ? { revoked: params.id } : { error: 'not_found' })
  }))
}
