import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect, connackCode, nextMessage } from '../helpers/mqtt.js'

const POLICY = `
rules:
  - { id: open, effect: allow, actions: [publish, subscribe], topics: ['site/#'] }
  - { id: fw-approval, effect: allow, actions: [publish], topics: ['site/+/fw'], approval: { approvers: { groups: [ops] } } }
  - { id: no-guests, effect: deny, actions: [connect], who: { groups: [guests] } }
masks:
  - id: pii
    topics: ['site/+/people']
    format: json
    fields:
      - { path: email, action: redact }
`

function policyDir(t: Parameters<typeof tempDir>[0]): string {
  const dir = join(tempDir(t), 'policies')
  mkdirSync(dir)
  writeFileSync(join(dir, 'p.yaml'), POLICY)
  return dir
}

t.test('global monitor: holds, masks and connect refusals are journaled as would_*, and nothing is changed', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false, mode: 'monitor' } })
  const url = g.url()
  t.equal(await connackCode(t, url, { clientId: 'guest', password: await g.token({ sub: 'guest', groups: ['guests'] }) }), 0, 'a connect the policy refuses proceeds')
  t.equal(await connackCode(t, url, { clientId: 'nobody', password: 'not-a-token' }), 4, 'authentication stays enforced')
  const sub = await connect(t, url, { clientId: 'reader', password: await g.token({ sub: 'reader' }) })
  await sub.subscribeAsync('site/#', { qos: 1 })
  const pub = await connect(t, url, { clientId: 'agent', password: await g.token({ sub: 'agent', kind: 'agent' }) })

  let msg = nextMessage(sub)
  await pub.publishAsync('site/1/fw', 'v2', { qos: 1 })
  t.same([(await msg).topic, (await msg).payload.toString()], ['site/1/fw', 'v2'], 'the held publish is delivered at once')
  msg = nextMessage(sub)
  await pub.publishAsync('site/1/people', '{"email":"a@b.io","n":1}', { qos: 1 })
  t.equal((await msg).payload.toString(), '{"email":"a@b.io","n":1}', 'subscribers get the payload as sent')

  const e = g.journal.entries
  const wouldConnect = e.find((r) => r.type === 'would_deny' && r.action === 'connect')
  t.match(wouldConnect, { sub: 'guest', rule: 'no-guests', reason: 'rule_deny' })
  t.ok(e.some((r) => r.type === 'connect' && r.sub === 'guest'), 'and the connection is journaled as made')
  t.match(e.find((r) => r.type === 'would_hold'), { sub: 'agent', topic: 'site/1/fw', rule: 'fw-approval', reason: 'approval_required' })
  t.notOk(e.some((r) => r.type === 'held'), 'nothing held')
  t.match(e.find((r) => r.type === 'would_mask'), { topic: 'site/1/people', masks: ['pii'], masked: { redact: 1 } })
  const published = e.find((r) => r.type === 'publish' && r.topic === 'site/1/people')!
  t.notMatch(Buffer.from(published.payload!).toString(), /a@b\.io/, 'the journal still keeps only the masked view')
})

t.test('enforce mode is unchanged: the same policy refuses and holds, no would_* records', async (t) => {
  const g = await startGateway(t, { policies: { dir: policyDir(t), watch: false } })
  const url = g.url()
  t.equal(await connackCode(t, url, { clientId: 'guest', password: await g.token({ sub: 'guest', groups: ['guests'] }) }), 5)
  const sub = await connect(t, url, { clientId: 'reader', password: await g.token({ sub: 'reader' }) })
  await sub.subscribeAsync('site/#', { qos: 1 })
  const pub = await connect(t, url, { clientId: 'agent', password: await g.token({ sub: 'agent', kind: 'agent' }) })
  const msg = nextMessage(sub)
  await pub.publishAsync('site/1/people', '{"email":"a@b.io","n":1}', { qos: 1 })
  t.equal(JSON.parse((await msg).payload.toString()).email, '[REDACTED]')
  await pub.publishAsync('site/1/fw', 'v2', { qos: 1 })
  t.ok(g.journal.entries.some((r) => r.type === 'held'))
  t.notOk(g.journal.entries.some((r) => r.type.startsWith('would_')))
})
