import t from 'tap'
import { Masker } from '../../src/mask/masker.js'
import type { Identity } from '../../src/identity/types.js'
import { plan } from './helpers.js'

const who = (sub: string, groups: string[] = [], kind: Identity['kind'] = 'device'): Identity =>
  ({ sub, clientId: sub, groups, kind, claims: {}, listener: 'mqtt' })
const auditor = who('aud', ['auditors'], 'human')
const ops = who('ops', ['ops'])

const json = (b: Buffer | undefined) => JSON.parse(b!.toString())
const msg = () => Buffer.from(JSON.stringify({ email: 'bob@x.io', id: 'C-1', note: 'call 415-555-2671' }))

t.test('unconditional masks apply at publish; no view work at delivery', async (t) => {
  const m = new Masker(plan([{ topics: ['site/+/t'], fields: [{ path: 'email', action: 'redact' }, { path: 'id', action: 'hash' }], detectors: ['phone'] }]), 16)
  t.equal(m.onPublish('other/topic', msg()), undefined, 'no mask → undefined')
  const r = m.onPublish('site/a/t', msg())
  t.ok(r?.ok)
  if (!r?.ok) return
  t.same(r.masks, ['m0'])
  t.same(r.counts, { redact: 1, hash: 1, phone: 1 })
  const body = json(r.payload)
  t.equal(body.email, '[REDACTED]')
  t.equal(body.note, 'call [REDACTED:phone]')
  t.equal(m.forSubscriber(ops, 'site/a/t', r.payload), r.payload, 'stored payload goes out as is')
  t.equal(m.forSubscriber(auditor, 'site/a/t', r.payload), r.payload)
  t.equal(m.cached, 0, 'no views cached for unconditional masks')
})

t.test('unmaskedFor: raw for the group, one masked view shared by everyone else', async (t) => {
  const m = new Masker(plan([{ topics: ['site/#'], fields: [{ path: 'email', action: 'redact' }], unmaskedFor: { groups: ['auditors'] } }]), 16)
  const raw = msg()
  const r = m.onPublish('site/a/t', raw)
  t.ok(r?.ok)
  if (!r?.ok) return
  t.equal(r.payload, raw, 'the broker keeps the raw payload')
  t.same(r.masks, ['m0'], 'journal still lists the mask (for the masked view)')
  t.equal(m.forSubscriber(auditor, 'site/a/t', raw), raw, 'auditors get raw')
  const a = m.forSubscriber(ops, 'site/a/t', raw)
  const b = m.forSubscriber(who('x'), 'site/a/t', raw)
  t.equal(json(a).email, '[REDACTED]')
  t.equal(a, b, 'the same Buffer: computed once per (message, view)')
  t.equal(m.maskedView('site/a/t', raw), a, 'bridge/journal view = the fully masked view')
  t.equal(m.cached, 1)
})

t.test('unmaskedFor conditions all hold (like a rule `who`)', async (t) => {
  const m = new Masker(plan([{ fields: [{ path: 'email', action: 'redact' }], unmaskedFor: { groups: ['auditors'], kinds: ['human'] } }]), 16)
  const raw = msg()
  t.equal(m.forSubscriber(auditor, 't', raw), raw)
  t.not(m.forSubscriber(who('d', ['auditors'], 'device'), 't', raw), raw, 'group alone is not enough')
  const bySub = new Masker(plan([{ fields: [{ path: 'email', action: 'redact' }], unmaskedFor: { subs: ['svc-1'] } }]), 16)
  t.equal(bySub.forSubscriber(who('svc-1'), 't', raw), raw)
  t.not(bySub.forSubscriber(who('svc-2'), 't', raw), raw)
})

t.test('several masks on one topic: views per unmasked subset', async (t) => {
  const m = new Masker(plan([
    { topics: ['a/#'], fields: [{ path: 'email', action: 'redact' }], unmaskedFor: { groups: ['auditors'] } },
    { topics: ['a/b'], fields: [{ path: 'id', action: 'redact' }], unmaskedFor: { groups: ['ops'] } },
    { topics: ['a/+'], detectors: ['phone'] },
  ]), 16)
  const r = m.onPublish('a/b', msg())
  t.ok(r?.ok)
  if (!r?.ok) return
  t.same(r.masks, ['m2', 'm0', 'm1'])
  const stored = r.payload
  t.equal(json(stored).note, 'call [REDACTED:phone]', 'unconditional detector applied to the stored payload')
  t.equal(json(stored).email, 'bob@x.io')
  t.same(json(m.forSubscriber(auditor, 'a/b', stored)), { email: 'bob@x.io', id: '[REDACTED]', note: 'call [REDACTED:phone]' })
  t.same(json(m.forSubscriber(ops, 'a/b', stored)), { email: '[REDACTED]', id: 'C-1', note: 'call [REDACTED:phone]' })
  t.same(json(m.forSubscriber(who('x'), 'a/b', stored)), { email: '[REDACTED]', id: '[REDACTED]', note: 'call [REDACTED:phone]' })
})

t.test('payloads that bypassed onPublish are masked at delivery, idempotently', async (t) => {
  const m = new Masker(plan([{ fields: [{ path: 'id', action: 'hash' }, { path: 'email', action: 'last4' }], detectors: ['phone'] }]), 16)
  const r = m.onPublish('t', msg())
  if (!r?.ok) throw new Error('refused')
  // the retained store re-reads the stored bytes into a new Buffer
  const reread = Buffer.from(r.payload)
  const out = m.forSubscriber(ops, 't', reread)
  t.same(json(out), json(r.payload), 'masking the masked payload again changes nothing (hash tokens kept)')
  // a message injected by the gateway itself (bridge inbound, approvals)
  const injected = m.forSubscriber(ops, 't', msg())
  t.same(json(injected), json(r.payload))
})

t.test('parse errors at publish', async (t) => {
  const bad = Buffer.from('{"email": ')
  const block = new Masker(plan([{ format: 'json', fields: [{ path: 'email', action: 'redact' }] }]), 16)
  const r = block.onPublish('t', bad)
  t.ok(r && !r.ok && r.reason === 'unparseable_payload' && r.mask === 'm0')
  const cond = new Masker(plan([{ format: 'json', fields: [{ path: 'email', action: 'redact' }], unmaskedFor: { groups: ['auditors'] } }]), 16)
  const rc = cond.onPublish('t', bad)
  t.ok(rc && !rc.ok, 'a conditional mask that cannot read the payload refuses it at publish too')
  t.equal(cond.forSubscriber(ops, 't', bad), undefined, 'and it would never be delivered masked-less')
  const redactAll = new Masker(plan([{ format: 'json', onParseError: 'redact-all', fields: [{ path: 'email', action: 'redact' }] }]), 16)
  const ra = redactAll.onPublish('t', bad)
  t.ok(ra?.ok && ra.payload.toString() === '[REDACTED]')
  if (ra?.ok) t.equal(redactAll.forSubscriber(ops, 't', Buffer.from(ra.payload))?.toString(), '[REDACTED]', 'redact-all output re-read is delivered')
})

t.test('cache is bounded; size 0 disables it; a new plan drops it', async (t) => {
  const spec = [{ fields: [{ path: 'email', action: 'redact' as const }], unmaskedFor: { groups: ['auditors'] } }]
  const m = new Masker(plan(spec), 3)
  for (let i = 0; i < 10; i++) m.forSubscriber(ops, 't', msg())
  t.equal(m.cached, 3)
  const raw = msg()
  const first = m.forSubscriber(ops, 't', raw)
  t.equal(m.forSubscriber(ops, 't', raw), first)
  t.not(m.forSubscriber(ops, 'other', raw), undefined, 'same Buffer on another topic is recomputed, not mixed up')
  m.setPlan(plan([]))
  t.equal(m.cached, 0)
  t.equal(m.forSubscriber(ops, 't', raw), raw, 'no masks in the new plan')
  const none = new Masker(plan(spec), 0)
  const x = none.forSubscriber(ops, 't', raw)
  t.equal(json(x).email, '[REDACTED]')
  t.equal(none.cached, 0)
})

t.test('topic matching: + and # levels, $ topics, several filters', async (t) => {
  const p = plan([{ topics: ['site/+/dev/+/telemetry', 'fleet/#'] }, { topics: ['#'] }, { topics: ['+/x'] }])
  t.same(p.match('site/s1/dev/d1/telemetry').map((m) => m.id), ['m0', 'm1'])
  t.same(p.match('fleet').map((m) => m.id), ['m0', 'm1'], '# matches the parent level')
  t.same(p.match('fleet/a/b').map((m) => m.id), ['m0', 'm1'])
  t.same(p.match('a/x').map((m) => m.id), ['m1', 'm2'])
  t.same(p.match('site/s1/dev/d1').map((m) => m.id), ['m1'])
  t.same(p.match('$SYS/x').map((m) => m.id), [], 'first-level wildcards do not match $ topics')
})
