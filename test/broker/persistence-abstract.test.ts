// Runs the official aedes-persistence 11 conformance suite (abstract.js) against the LMDB
// persistence under node-tap. The suite is written for node:test: each test calls
// `t.plan(n)`, `t.assert.{equal,notEqual,deepEqual,ok}` (node:assert's functions) and
// `t.diagnostic()`. The adapter below gives a tap subtest that shape: every node:assert
// call becomes one tap assertion (pass, or fail with the assertion's message), so plan
// counts and comparison semantics are exactly those the suite was written against.
import t, { type Test } from 'tap'
import assert from 'node:assert'
import { createRequire } from 'node:module'
import { LmdbPersistence } from '../../src/broker/persistence/lmdb.js'
import { tempDir } from '../helpers/gateway.js'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: (name: string, fn: (t: NodeTestLike) => Promise<void>) => void
  persistence: () => Promise<unknown>
  testAsync: boolean
}) => void

type AssertName = 'equal' | 'notEqual' | 'deepEqual' | 'ok'
interface NodeTestLike {
  plan(n: number): void
  diagnostic(msg: string): void
  assert: Record<AssertName, (...args: unknown[]) => void>
}

function nodeTestShape(tt: Test): NodeTestLike {
  const wrap = (name: AssertName) => (...args: unknown[]): void => {
    const message = String((name === 'ok' ? args[1] : args[2]) ?? name)
    try {
      ;(assert[name] as (...a: unknown[]) => void)(...args)
      tt.pass(message)
    } catch (err) {
      tt.fail(message, { diagnostic: true, error: (err as Error).message })
    }
  }
  return {
    plan: (n) => tt.plan(n),
    diagnostic: (msg) => tt.comment(msg),
    assert: { equal: wrap('equal'), notEqual: wrap('notEqual'), deepEqual: wrap('deepEqual'), ok: wrap('ok') },
  }
}

let count = 0
abstractPersistence({
  test: (name, fn) => {
    count++
    t.test(name, (tt) => fn(nodeTestShape(tt)))
  },
  // every test gets a fresh persistence in its own data dir (its own LMDB environment)
  persistence: async () => new LmdbPersistence({ dataDir: tempDir(t, 'ew-abs-') }),
  testAsync: true,
})

t.test('the whole suite was registered', async (tt) => {
  tt.ok(count >= 50, `${count} conformance tests registered`)
})
