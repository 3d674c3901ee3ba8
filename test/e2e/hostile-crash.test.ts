import t from 'tap'
import { startGateway } from '../helpers/gateway.js'
import { connect, nextMessage, waitClose } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import type { PolicyEngine } from '../../src/policy/types.js'

/** The running policy, except that deciding on a `boom/` topic throws (a bug in a policy hook). */
function explosive(real: PolicyEngine): PolicyEngine {
  return {
    revision: real.revision,
    release: real.release?.bind(real),
    decide(id, action, topic, input) {
      // the message quotes something secret-looking: it must not reach the journal
      if (topic.startsWith('boom/')) throw new TypeError('cannot read SECRET-7f3a of undefined')
      return real.decide(id, action, topic, input)
    },
  }
}

t.test('an exception in a policy hook disconnects that client, is journaled, and the gateway keeps serving', async (t) => {
  const g = await startGateway(t)
  g.gw.core.setPolicy(explosive(g.gw.core.policy))
  const good = await connect(t, g.url(), { clientId: 'good', password: await g.token({ sub: 'good' }) })
  await good.subscribeAsync('ok/#')

  // publish path
  const bad = await connect(t, g.url(), { clientId: 'bad-pub', password: await g.token({ sub: 'bad-pub' }) })
  bad.publish('boom/1', 'x', { qos: 1 })
  await waitClose(bad)
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'protocol_error' && e.clientId === 'bad-pub'), 5000, 'fault record')
  t.match(rec, { reason: 'internal_error', hook: 'authorizePublish', error: 'TypeError', sub: 'bad-pub' }, 'journaled with the hook and the error type')
  t.match(String(rec.at), /hostile-crash\.test\.ts:\d+/, 'and where it was thrown')
  t.notOk(JSON.stringify(g.journal.entries).includes('SECRET-7f3a'), 'the error message (which may quote a payload) is not journaled')
  t.equal(g.journal.entries.filter((e) => e.type === 'protocol_error' && e.clientId === 'bad-pub').length, 1, 'one record, not a second one for the resulting client error')

  // subscribe path
  const bad2 = await connect(t, g.url(), { clientId: 'bad-sub', password: await g.token({ sub: 'bad-sub' }) })
  bad2.subscribe('boom/#')
  await waitClose(bad2)
  const rec2 = await waitFor(() => g.journal.entries.find((e) => e.type === 'protocol_error' && e.clientId === 'bad-sub'), 5000, 'fault record')
  t.match(rec2, { reason: 'internal_error', hook: 'authorizeSubscribe' })

  const m = nextMessage(good)
  const pub = await connect(t, g.url(), { clientId: 'pub', password: await g.token({ sub: 'pub' }) })
  await pub.publishAsync('ok/1', 'still here', { qos: 1 })
  t.equal((await m).payload.toString(), 'still here', 'other clients keep working')
  t.ok(good.connected, 'the well-behaved subscriber stayed connected')
  const metric = await g.gw.metrics.registry.getSingleMetricAsString('edgewarden_protocol_errors_total')
  t.match(metric, /reason="internal_error"\} 2/, 'counted')
})

t.test('an exception while authenticating refuses that CONNECT with code 3', async (t) => {
  const g = await startGateway(t)
  const real = g.gw.core.policy
  g.gw.core.setPolicy({ revision: real.revision, decide(id, action, topic, input) { if (action === 'connect' && id.sub === 'boom') throw new RangeError('x'); return real.decide(id, action, topic, input) } })
  const err = await connect(t, g.url(), { clientId: 'boom', password: await g.token({ sub: 'boom' }) }).then(() => undefined, (e: { code?: number }) => e)
  t.equal(err?.code, 3, 'CONNACK 3 (server unavailable): never an admission')
  const rec = await waitFor(() => g.journal.entries.find((e) => e.type === 'protocol_error' && e.reason === 'internal_error'), 5000, 'fault record')
  t.match(rec, { hook: 'authenticate', error: 'RangeError' })
  const ok = await connect(t, g.url(), { clientId: 'fine', password: await g.token({ sub: 'fine' }) })
  t.ok(ok.connected, 'the next client connects')
})
