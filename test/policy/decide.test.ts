import t from 'tap'
import { ManualClock } from '../../src/clock.js'
import { matrixPolicy, ROWS, who } from './fixture.js'

t.test('decision matrix (unit, no sockets)', async (t) => {
  const p = matrixPolicy({ clock: new ManualClock(0) })
  t.ok(ROWS.length >= 60, `${ROWS.length} decisions`)
  for (const [w, action, topic, input, effect, rule, reason] of ROWS) {
    const d = p.decide(who[w], action, topic, { qos: input.qos ?? 0, retain: input.retain ?? false, payload: input.payload === undefined ? undefined : Buffer.from(input.payload) })
    const label = `${w} ${action} ${topic || '(connect)'}${input.qos !== undefined ? ` qos${input.qos}` : ''}${input.retain ? ' retain' : ''}`
    t.same({ effect: d.effect, rule: d.ruleId ?? null, ...(reason ? { reason: d.reason } : {}) }, { effect, rule, ...(reason ? { reason } : {}) }, label)
  }
})

t.test('subscribe grants at most the rule QoS', async (t) => {
  const p = matrixPolicy()
  t.equal(p.decide(who.dash, 'subscribe', 'site/+/dev/+/telemetry', { qos: 2 }).maxQos, 0)
  t.equal(p.decide(who.sensor, 'subscribe', 'site/1/dev/sensor-1/cmd/#', { qos: 2 }).maxQos, 1)
  t.equal(p.decide(who.ops, 'subscribe', 'site/1/dev/#', { qos: 2 }).maxQos, 2)
})

t.test('hold decisions carry the approval spec', async (t) => {
  const d = matrixPolicy().decide(who.agent, 'publish', 'site/2/dev/d/cmd/firmware', { qos: 1, payload: Buffer.from('{}') })
  t.same(d.hold, { approvers: { groups: ['ops-leads'] }, quorum: 2, ttlMs: 600_000, selfApproval: false })
})

t.test('rate: per client token bucket, refilled with time, released on disconnect', async (t) => {
  const clock = new ManualClock(1_000_000)
  const p = matrixPolicy({ clock })
  const pub = (id = who.sensor) => p.decide(id, 'publish', `site/1/dev/${id.clientId}/telemetry`, { qos: 0, payload: Buffer.from('1') })
  t.same([pub(), pub(), pub()].map((d) => d.effect), ['allow', 'allow', 'allow'], 'burst of 3')
  const d = pub()
  t.equal(d.effect, 'deny')
  t.equal(d.reason, 'rate_limited')
  t.equal(d.ruleId, 'sensors-own-telemetry')
  const other = { ...who.sensor, sub: 'sensor-2', clientId: 'sensor-2' }
  t.equal(pub(other).effect, 'allow', 'another client has its own bucket')
  clock.advance(340)
  t.equal(pub().effect, 'allow', 'one token back after 1/3 s')
  t.equal(pub().effect, 'deny')
  t.equal(p.rateClients, 2)
  p.release('sensor-1')
  t.equal(p.rateClients, 1, 'state dropped on disconnect')
  t.equal(pub().effect, 'allow', 'fresh bucket')
})

t.test('rate state is bounded', async (t) => {
  const p = matrixPolicy({ maxRateClients: 10 })
  for (let i = 0; i < 50; i++) {
    const id = { ...who.sensor, sub: `s${i}`, clientId: `s${i}` }
    p.decide(id, 'publish', `site/1/dev/s${i}/telemetry`, { qos: 0, payload: Buffer.from('1') })
  }
  t.equal(p.rateClients, 10)
})

t.test('decisions are shared frozen records; deciding compiles no regex', async (t) => {
  const p = matrixPolicy()
  const payload = Buffer.from('harmless')
  const a = p.decide(who.ops, 'publish', 'site/1/x', { qos: 0, payload })
  t.ok(Object.isFrozen(a))
  const RealRegExp = globalThis.RegExp
  let constructed = 0
  globalThis.RegExp = new Proxy(RealRegExp, { construct(target, args) { constructed++; return Reflect.construct(target, args) }, apply(target, self, args) { constructed++; return Reflect.apply(target, self, args) } })
  let same = true
  try {
    for (let i = 0; i < 2000; i++) {
      same &&= p.decide(who.ops, 'publish', 'site/1/x', { qos: 0, payload }) === a
      p.decide(who.sensor, 'publish', 'site/1/dev/sensor-2/telemetry', { qos: 0, payload })
      p.decide(who.dash, 'subscribe', 'site/+/dev/+/telemetry', { qos: 0 })
      p.decide(who.ops, 'publish', 'site/1/db', { qos: 0, payload: Buffer.from('DROP TABLE x') })
    }
  } finally {
    globalThis.RegExp = RealRegExp
  }
  t.equal(constructed, 0, 'no RegExp built while deciding')
  t.ok(same, 'the same decision object every time (nothing allocated per decision)')
})

t.test('empty policy: default deny everywhere, connect open', async (t) => {
  const { compilePolicy, emptyPolicyDocument } = await import('../../src/policy/index.js')
  const p = compilePolicy(emptyPolicyDocument())
  t.equal(p.decide(who.ops, 'publish', 'a', { qos: 0 }).effect, 'deny')
  t.equal(p.decide(who.ops, 'subscribe', 'a/#', { qos: 0 }).effect, 'deny')
  t.equal(p.decide(who.ops, 'connect', '', {}).effect, 'allow')
})

t.test('connect allow rules switch connect to allow-list mode', async (t) => {
  const { lintPolicyFiles } = await import('../../src/policy/load.js')
  const { compilePolicy } = await import('../../src/policy/index.js')
  const r = lintPolicyFiles([{ name: 'c.yaml', path: 'c.yaml', text: 'rules:\n  - { id: only-devices, effect: allow, actions: [connect], who: { kinds: [device] } }\n' }])
  const p = compilePolicy(r.doc!)
  t.same(p.decide(who.sensor, 'connect', '', {}), { effect: 'allow', ruleId: 'only-devices', reason: 'rule_allow' })
  t.same(p.decide(who.ops, 'connect', '', {}), { effect: 'deny', reason: 'connect_not_listed' })
})
