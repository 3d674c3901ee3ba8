import t from 'tap'
import { startLmdbGateway, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

t.test('audit API over the LMDB journal: filters, live tail after a seq, chain verification, admins only', async (t) => {
  const policies = join(tempDir(t), 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'p.yaml'), "rules:\n  - { id: telemetry, effect: allow, actions: [publish, subscribe], topics: ['site/+/telemetry'] }\n")
  const { gw, url, token: mint } = await startLmdbGateway(t, { gateway: { id: 'gw-audit' }, policies: { dir: policies, watch: false } })
  const token = (sub: string, groups: string[] = []) => mint({ sub, groups })
  const dev = await connect(t, url, { clientId: 'dev-1', password: await token('dev-1') })
  for (let i = 0; i < 5; i++) await dev.publishAsync('site/1/telemetry', `{"n":${i}}`, { qos: 1 })
  await connect(t, url, { clientId: 'x', password: 'not-a-token' }).catch(() => {})
  await new Promise((r) => setTimeout(r, 50))

  const base = `http://127.0.0.1:${gw.address('admin')!.port}`
  const admin = await token('root', ['admins'])
  const get = async (path: string, tok = admin) => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${tok}` } })
    return { status: res.status, json: await res.json() as { records: Record<string, unknown>[]; last: number; ok?: boolean } }
  }
  t.equal((await get('/api/audit', await token('dev-1'))).status, 403, 'not an admin')
  const pubs = await get('/api/audit?type=publish&clientId=dev-1&limit=3')
  t.equal(pubs.status, 200)
  t.equal(pubs.json.records.length, 3, 'limit')
  t.match(pubs.json.records[0], { type: 'publish', clientId: 'dev-1', topic: 'site/1/telemetry', seq: Number, at: String })
  t.ok((pubs.json.records[0]!.seq as number) > (pubs.json.records[1]!.seq as number), 'newest first')
  t.notOk('payload' in pubs.json.records[0]!, 'no payload bytes in API answers')
  const denied = await get('/api/audit?type=connect_denied&since=1h')
  t.match(denied.json.records, [{ type: 'connect_denied', reason: 'malformed' }])
  t.notMatch(JSON.stringify(denied.json), /not-a-token/, 'no token text')
  const last = pubs.json.last
  await dev.publishAsync('site/1/telemetry', '{"n":99}', { qos: 1 })
  await new Promise((r) => setTimeout(r, 50))
  const tail = await get(`/api/audit?after=${last}`)
  t.match(tail.json.records, [{ type: 'publish', seq: last + 1 }], 'live tail: only what came after')
  t.equal((await get('/api/audit?since=yesterday-ish')).status, 400)
  const v = await get('/api/audit/verify')
  t.match(v, { status: 200, json: { ok: true } })
  const metrics = await (await fetch(base + '/metrics')).text()
  t.match(metrics, /edgewarden_journal_last_seq \d+/, 'journal position in /metrics')
  t.match(metrics, /edgewarden_journal_lag_records \d+/, 'journal lag (unshipped records)')
  t.match(metrics, /edgewarden_process_nodejs_eventloop_lag_seconds/, 'event-loop lag')
  t.match(metrics, /edgewarden_publishes_total\{effect="allow"\} 6/, 'publishes by decision')
})
