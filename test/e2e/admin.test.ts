import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { connect, waitClose } from '../helpers/mqtt.js'

t.test('admin API: authz matrix, sessions, kick, readiness, policy revision', async (t) => {
  const g = await startGateway(t)
  const base = `http://127.0.0.1:${g.port('admin')}`
  const call = async (method: string, path: string, token?: string) => {
    const res = await fetch(base + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} })
    return { status: res.status, json: await res.json() as Record<string, unknown> }
  }
  const adminToken = await g.token({ sub: 'root', groups: ['admins'], kind: 'human' })
  const plain = await g.token({ sub: 'someone' })
  for (const [method, path] of [['GET', '/api/sessions'], ['DELETE', '/api/sessions/x'], ['GET', '/api/policy'], ['GET', '/api/approvals'], ['GET', '/api/grants'], ['POST', '/api/grants']] as const) {
    t.equal((await call(method, path)).status, 401, `${method} ${path} without a token`)
  }
  for (const [method, path] of [['GET', '/api/sessions'], ['DELETE', '/api/sessions/x'], ['GET', '/api/policy'], ['POST', '/api/grants']] as const) {
    t.equal((await call(method, path, plain)).status, 403, `${method} ${path} without the role`)
  }
  t.equal((await call('GET', '/nope', adminToken)).status, 404)
  t.equal((await call('PUT', '/api/sessions', adminToken)).status, 405)

  const dev = await connect(t, g.url(), { clientId: 'dev-1', password: await g.token({ sub: 'dev-1', groups: ['sensors'] }) })
  const list = await call('GET', '/api/sessions', adminToken)
  t.equal(list.status, 200)
  t.match(list.json.sessions, [{ clientId: 'dev-1', sub: 'dev-1', groups: ['sensors'], listener: /^mqtt:/, remote: '127.0.0.1' }])
  t.notMatch(JSON.stringify(list.json), /eyJ/, 'no token in the sessions list')
  t.equal((await call('DELETE', '/api/sessions/nobody', adminToken)).status, 404)
  const closed = waitClose(dev)
  t.equal((await call('DELETE', '/api/sessions/dev-1', adminToken)).status, 200)
  await closed
  t.match(g.journal.entries.filter((e) => e.type === 'disconnect'), [{ clientId: 'dev-1', reason: 'kicked', by: 'root' }], 'kick journaled once, with who')
  t.match((await call('GET', '/api/policy', adminToken)).json, { revision: String })
  t.match(await call('GET', '/readyz'), { status: 200, json: { ready: true } })
  t.match(await call('GET', '/healthz'), { status: 200, json: { status: 'ok', gateway: 'gw-test' } })
})

t.test('/metrics counts masks applied, by mask id', async (t) => {
  const { mkdirSync, writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tempDir } = await import('../helpers/gateway.js')
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'p.yaml'), "rules:\n  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['#'] }\nmasks:\n  - { id: pii, topics: ['t/#'], format: json, fields: [{ path: email, action: redact }] }\n")
  const g = await startGateway(t, { policies: { dir, watch: false } })
  const c = await connect(t, g.url(), { clientId: 'dev', password: await g.token({ sub: 'dev' }) })
  for (let i = 0; i < 3; i++) await c.publishAsync('t/1', '{"email":"a@b.c"}', { qos: 1 })
  const text = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  t.match(text, /edgewarden_masks_applied_total\{mask="pii"\} 3/)
})
