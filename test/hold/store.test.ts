import t from 'tap'
import { holdStoreSuite } from './store-abstract.js'
import { MemoryHoldStore } from '../../src/hold/memory-store.js'
import { LmdbHoldStore } from '../../src/hold/lmdb-store.js'
import { tempDir } from '../helpers/gateway.js'

t.test('MemoryHoldStore', async (t) => holdStoreSuite(t, async () => ({ store: new MemoryHoldStore() })))
t.test('LmdbHoldStore', async (t) => holdStoreSuite(t, async (t) => {
  const dir = tempDir(t)
  return { store: new LmdbHoldStore(dir), reopen: async () => new LmdbHoldStore(dir) }
}))
