import t from 'tap'
import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'

/** Devices publish telemetry; firmware commands from agents wait for two ops leads. */
const POLICY = `
rules:
  - id: telemetry
    effect: allow
    actions: [publish, subscribe]
    topics: ['site/+/dev/+/telemetry']
  - id: devices-read-commands
    effect: allow
    actions: [subscribe]
    topics: ['site/+/dev/+/cmd/#']
  - id: firmware-needs-approval
    effect: allow
    actions: [publish]
    topics: ['site/+/dev/+/cmd/firmware']
    who: { kinds: [agent] }
    approval: { approvers: { groups: [ops-leads] }, quorum: QUORUM, ttl: TTL, selfApproval: false }
  - id: approvers-see-pending
    effect: allow
    actions: [subscribe]
    topics: ['$warden/approvals/pending']
    who: { groups: [ops-leads] }
`

function policyDir(t: Test, quorum = 2, ttl = '1m'): string {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'site.yaml'), POLICY.replace('QUORUM', String(quorum)).replace('TTL', ttl))
  return dir
}

async function api(g: TestGateway, token: string | undefined, method: string, path: string, body?: object): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${g.port('admin')}${path}`, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

/** true when no message arrives within ms */
const silence = (c: MqttClient, ms: number) =>
  new Promise<boolean>((resolve) => {
    const onMessage = () => { clearTimeout(timer); resolve(false) }
    const timer = setTimeout(() => { c.off('message', onMessage); resolve(true) }, ms)
    c.once('message', onMessage)
  })

t.test('a held firmware command is acknowledged, parked, and delivered on a quorum of two distinct approvers', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false } })
  const device = await connect(t, g.url(), { clientId: 'dev-7', password: await g.token({ sub: 'dev-7' }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const watcher = await connect(t, g.url(), { clientId: 'alice-phone', password: await g.token({ sub: 'alice', clientId: 'alice-phone', groups: ['ops-leads'], kind: 'human' }) })
  const granted = await watcher.subscribeAsync('$warden/approvals/pending', { qos: 1 })
  t.equal(granted[0]!.qos, 1, 'approvers may watch the pending topic')
  const agent = await connect(t, g.url(), { clientId: 'agent-1', password: await g.token({ sub: 'agent-1', kind: 'agent' }) })

  const announced = nextMessage(watcher)
  const quiet = silence(device, 700)
  await agent.publishAsync('site/1/dev/7/cmd/firmware', '{"version":"2.0.1"}', { qos: 1 })
  t.pass('the agent got its PUBACK')
  const note = JSON.parse((await announced).payload.toString()) as { event: string; id: string; topic: string; requester: { sub: string } }
  t.match(note, { event: 'held', topic: 'site/1/dev/7/cmd/firmware', requester: { sub: 'agent-1' } })
  t.ok(await quiet, 'the device received nothing before approval')
  t.match(g.journal.entries.find((e) => e.type === 'held'), { topic: 'site/1/dev/7/cmd/firmware', sub: 'agent-1', rule: 'firmware-needs-approval' })

  const alice = await g.token({ sub: 'alice', groups: ['ops-leads'], kind: 'human' })
  const bob = await g.token({ sub: 'bob', groups: ['ops-leads'], kind: 'human' })
  const agentToken = await g.token({ sub: 'agent-1', kind: 'agent' })
  const mallory = await g.token({ sub: 'mallory', groups: ['visitors'] })

  t.equal((await api(g, undefined, 'GET', '/api/approvals')).status, 401, 'no token, no queue')
  t.equal((await api(g, 'garbage', 'GET', '/api/approvals')).status, 401)
  const list = await api(g, alice, 'GET', '/api/approvals')
  t.equal(list.status, 200)
  t.match(list.json.approvals, [{ id: note.id, preview: '{"version":"2.0.1"}', quorum: 2, approvals: [] }])
  t.equal((await api(g, mallory, 'POST', `/api/approvals/${note.id}/approve`)).status, 403, 'outsiders cannot approve')
  t.equal((await api(g, agentToken, 'POST', `/api/approvals/${note.id}/approve`)).status, 403, 'the requester cannot approve')
  const first = await api(g, alice, 'POST', `/api/approvals/${note.id}/approve`)
  t.match(first, { status: 200, json: { delivered: false, approvals: ['alice'] } })
  t.equal((await api(g, alice, 'POST', `/api/approvals/${note.id}/approve`)).status, 409, 'the same approver twice does not count')

  const delivered = nextMessage(device)
  const second = await api(g, bob, 'POST', `/api/approvals/${note.id}/approve`)
  t.match(second, { status: 200, json: { delivered: true } })
  const m = await delivered
  t.equal(m.topic, 'site/1/dev/7/cmd/firmware')
  t.equal(m.payload.toString(), '{"version":"2.0.1"}')
  t.match(g.journal.entries.find((e) => e.type === 'approved'), { sub: 'agent-1', approvers: ['alice', 'bob'] })
  t.same((await api(g, alice, 'GET', '/api/approvals')).json.approvals, [], 'queue empty')
  const metrics = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  t.match(metrics, /edgewarden_approval_latency_seconds_count 1/)
})

t.test('rejection and expiry drop the message and are journaled', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t, 1, '1s'), watch: false } })
  const device = await connect(t, g.url(), { clientId: 'dev-7', password: await g.token({ sub: 'dev-7' }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const agent = await connect(t, g.url(), { clientId: 'agent-1', password: await g.token({ sub: 'agent-1', kind: 'agent' }) })
  const alice = await g.token({ sub: 'alice', groups: ['ops-leads'] })
  const quiet = silence(device, 2500)
  await agent.publishAsync('site/1/dev/7/cmd/firmware', 'v-reject', { qos: 1 })
  const [held] = (await api(g, alice, 'GET', '/api/approvals')).json.approvals as { id: string }[]
  t.match(await api(g, alice, 'POST', `/api/approvals/${held!.id}/reject`, { reason: 'not during production' }), { status: 200, json: { state: 'rejected' } })
  t.match(g.journal.entries.find((e) => e.type === 'rejected'), { approver: 'alice', reason: 'not during production' })
  await agent.publishAsync('site/1/dev/7/cmd/firmware', 'v-expire', { qos: 1 })
  await new Promise((r) => setTimeout(r, 2200))
  t.ok(g.journal.entries.some((e) => e.type === 'hold_expired'), 'expired after ttl')
  t.ok(await quiet, 'neither message reached the device')
})

t.test('a held message survives a gateway restart and is delivered after it', async (t) => {
  const dir = policyDir(t, 1)
  const first = await startGateway(t, { policies: { dir, watch: false } })
  const agent = await connect(t, first.url(), { clientId: 'agent-1', password: await first.token({ sub: 'agent-1', kind: 'agent' }) })
  await agent.publishAsync('site/1/dev/7/cmd/firmware', 'after-reboot', { qos: 1 })
  agent.end(true)
  await first.gw.stop()
  // same data dir, same dev key: a new process would see the same LMDB state
  const second = await startGateway(t, { gateway: { id: 'gw-test', dataDir: first.dataDir }, policies: { dir, watch: false } })
  const device = await connect(t, second.url(), { clientId: 'dev-7', password: await second.token({ sub: 'dev-7' }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const alice = await second.token({ sub: 'alice', groups: ['ops-leads'] })
  const pending = (await api(second, alice, 'GET', '/api/approvals')).json.approvals as { id: string; preview: string }[]
  t.equal(pending.length, 1)
  t.equal(pending[0]!.preview, 'after-reboot')
  const got = nextMessage(device)
  t.match(await api(second, alice, 'POST', `/api/approvals/${pending[0]!.id}/approve`), { status: 200, json: { delivered: true } })
  t.equal((await got).payload.toString(), 'after-reboot')
})

t.test('grants: a time-bound allow, listed, revocable; revocation removes the live subscription', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false }, admin: { host: '127.0.0.1', port: 0, approvers: { groups: ['ops-leads'] } } })
  const svc = await connect(t, g.url(), { clientId: 'svc-9', password: await g.token({ sub: 'svc-9', kind: 'service' }) })
  await t.rejects(svc.subscribeAsync('site/1/status', { qos: 0 }), 'no rule: SUBACK failure (128)')
  const alice = await g.token({ sub: 'alice', groups: ['ops-leads'] })
  const mallory = await g.token({ sub: 'mallory' })
  t.equal((await api(g, mallory, 'POST', '/api/grants', { sub: 'svc-9', actions: ['subscribe'], topics: ['site/1/status'], ttl: '10m' })).status, 403)
  t.equal((await api(g, alice, 'POST', '/api/grants', { sub: 'svc-9', actions: ['rm -rf'], topics: [], ttl: 'forever' })).status, 400)
  const created = await api(g, alice, 'POST', '/api/grants', { sub: 'svc-9', actions: ['subscribe', 'publish'], topics: ['site/1/status'], ttl: '10m', reason: 'commissioning' })
  t.equal(created.status, 201)
  t.match(g.journal.entries.find((e) => e.type === 'grant'), { sub: 'svc-9', grantedBy: 'alice', reason: 'commissioning' })
  const ok = await svc.subscribeAsync('site/1/status', { qos: 0 })
  t.equal(ok[0]!.qos, 0, 'granted subscription')
  t.match((await api(g, alice, 'GET', '/api/grants')).json.grants, [{ sub: 'svc-9' }])
  const self = await connect(t, g.url(), { clientId: 'svc-9-pub', password: await g.token({ sub: 'svc-9', clientId: 'svc-9-pub' }) })
  const first = nextMessage(svc)
  await self.publishAsync('site/1/status', 'one', { qos: 1 })
  t.equal((await first).payload.toString(), 'one')
  t.equal((await api(g, alice, 'DELETE', `/api/grants/${created.json.id as string}`)).status, 200)
  await new Promise((r) => setTimeout(r, 100))
  t.match(g.journal.entries.filter((e) => e.type === 'subscribe_denied').at(-1), { topic: 'site/1/status', reason: 'grant_expired' })
  const quiet = silence(svc, 500)
  await new Promise<void>((resolve) => { self.publish('site/1/status', 'two', { qos: 0 }, () => resolve()) })
  t.ok(await quiet, 'the revoked subscription no longer delivers')
})


t.test('webhook: signed POST for each hold event (literal secret)', async (t) => {
  const got: { body: string; sig: string | undefined }[] = []
  const hook = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => { got.push({ body, sig: req.headers['x-edgewarden-signature'] as string | undefined }); res.end('ok') })
  })
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => hook.close(() => r())))
  const port = (hook.address() as { port: number }).port
  const g = await startGateway(t, {
    policies: { dir: policyDir(t, 1), watch: false },
    admin: { host: '127.0.0.1', port: 0, webhook: { url: `http://127.0.0.1:${port}/hook`, secret: 'hook-secret-123' } },
  })
  const agent = await connect(t, g.url(), { clientId: 'agent-1', password: await g.token({ sub: 'agent-1', kind: 'agent' }) })
  await agent.publishAsync('site/1/dev/7/cmd/firmware', 'v3', { qos: 1 })
  for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(got.length, 1)
  const expected = 'sha256=' + createHmac('sha256', 'hook-secret-123').update(got[0]!.body).digest('hex')
  t.equal(got[0]!.sig, expected, 'HMAC of the exact body')
  t.match(JSON.parse(got[0]!.body), { event: 'held', topic: 'site/1/dev/7/cmd/firmware', gateway: 'gw-test' })
  t.notMatch(got[0]!.body, /hook-secret-123/, 'the secret is not in the body')
})

t.test('approvers see the masked view of a held payload, even when a mask keeps the raw one for some subscribers', async (t) => {
  const dir = policyDir(t, 1)
  writeFileSync(join(dir, 'masks.yaml'), `
masks:
  - id: fw-credentials
    topics: ['site/+/dev/+/cmd/#']
    format: json
    fields: [{ path: wifi.password, action: redact }]
    unmaskedFor: { groups: [devices] }
`)
  const g = await startGateway(t, { policies: { dir, watch: false } })
  const device = await connect(t, g.url(), { clientId: 'dev-7', password: await g.token({ sub: 'dev-7', groups: ['devices'] }) })
  await device.subscribeAsync('site/1/dev/7/cmd/#', { qos: 1 })
  const agent = await connect(t, g.url(), { clientId: 'agent-1', password: await g.token({ sub: 'agent-1', kind: 'agent' }) })
  await agent.publishAsync('site/1/dev/7/cmd/firmware', JSON.stringify({ version: '3', wifi: { ssid: 'plant', password: 'hunter2-secret' } }), { qos: 1 })
  const alice = await g.token({ sub: 'alice', groups: ['ops-leads'] })
  const list = await api(g, alice, 'GET', '/api/approvals')
  const [held] = list.json.approvals as { id: string; preview: string }[]
  t.notMatch(held!.preview, /hunter2/, 'no raw secret in the approver preview')
  t.match(held!.preview, /REDACTED/)
  const got = nextMessage(device)
  await api(g, alice, 'POST', `/api/approvals/${held!.id}/approve`)
  t.match((await got).payload.toString(), /hunter2-secret/, 'the device in unmaskedFor still gets the raw command')
})
