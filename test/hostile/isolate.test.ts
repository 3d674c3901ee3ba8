import t from 'tap'
import type { Client } from 'aedes'
import { describeFault, guarded, isFaultError, isolateHooks, type HookName } from '../../src/broker/isolate.js'
import { ewError } from '../../src/errors.js'

const client = { id: 'c1' } as unknown as Client

function recorder() {
  const faults: { client: Client | null; hook: HookName; err: unknown }[] = []
  return { faults, onFault: (c: Client | null, hook: HookName, err: unknown) => { faults.push({ client: c, hook, err }) } }
}

t.test('authorizeForward: a throw drops the delivery to that subscriber and reports it', async (t) => {
  const r = recorder()
  const hooks = isolateHooks({ authorizeForward: () => { throw new Error('mask bug') } }, r.onFault)
  t.equal(hooks.authorizeForward!(client, { topic: 'a' } as never), null, 'not delivered')
  t.same(r.faults.map((f) => [f.client, f.hook]), [[client, 'authorizeForward']])
})

t.test('callback hooks: a throw answers with a fault error, normal calls pass through untouched', async (t) => {
  const r = recorder()
  const hooks = isolateHooks({
    authorizePublish: (_c, p, cb) => { if ((p as { topic: string }).topic === 'x') throw new Error('boom'); cb(null) },
    authorizeSubscribe: () => { throw new Error('boom') },
    preConnect: () => { throw new Error('boom') },
    authenticate: () => { throw new Error('boom') },
  }, r.onFault)
  const results: unknown[] = []
  hooks.authorizePublish!(client, { topic: 'ok' } as never, (err) => results.push(err))
  hooks.authorizePublish!(client, { topic: 'x' } as never, (err) => results.push(err))
  hooks.authorizeSubscribe!(client, { topic: 'a', qos: 0 } as never, (err, sub) => results.push([isFaultError(err), sub]))
  hooks.preConnect!(client, {} as never, (err, ok) => results.push([isFaultError(err), ok]))
  hooks.authenticate!(client, 'u', Buffer.from('p'), (err, ok) => results.push([(err as { returnCode?: number }).returnCode, ok]))
  t.equal(results[0], null, 'allowed publish: callback as the hook gave it')
  t.ok(isFaultError(results[1]), 'throwing publish: refused with a fault error')
  t.same(results.slice(2), [[true, null], [true, false], [3, false]])
  t.same(r.faults.map((f) => f.hook), ['authorizePublish', 'authorizeSubscribe', 'preConnect', 'authenticate'])
})

t.test('guarded event handlers', async (t) => {
  const r = recorder()
  guarded(client, r.onFault, () => { throw new Error('x') }, 1)
  t.equal(r.faults[0]?.hook, 'event')
})

t.test('describeFault: type, code and place, never a foreign message', async (t) => {
  let err: Error
  try { JSON.parse('{"card":"4111 1111 1111 1111"') } catch (e) { err = e as Error }
  const d = describeFault(err!)
  t.equal(d.error, 'SyntaxError')
  t.notOk(JSON.stringify(d).includes('4111'), 'the payload quoted by the parser stays out')
  t.match(d.at, /isolate\.test\.ts:\d+/)
  t.match(describeFault(Object.assign(new Error('m'), { code: 'ERR_X' })), { code: 'ERR_X' })
  t.match(describeFault(ewError('EW_INTERNAL', 'store closed')), { error: 'EwError: store closed' }, 'our own errors keep their message')
  t.same(describeFault('str'), { error: 'string' })
})
