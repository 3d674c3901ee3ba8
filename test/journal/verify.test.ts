import t from 'tap'
import { tempDir } from '../helpers/gateway.js'
import { openJournal } from './helpers.js'
import { verifyJournal } from '../../src/journal/verify.js'
import { CheckpointSigner, ensureGatewayKey, verifyCheckpoint } from '../../src/journal/signing.js'
import type { LmdbJournal } from '../../src/journal/lmdb.js'

async function filled(t: Parameters<typeof openJournal>[0], n = 20): Promise<LmdbJournal> {
  const j = openJournal(t, tempDir(t))
  for (let i = 0; i < n; i++) j.record({ type: 'publish', clientId: 'c', topic: `t/${i}`, qos: 1, payload: Buffer.from(`p${i}`) })
  await j.flush()
  return j
}

t.test('an intact journal verifies', async (t) => {
  const j = await filled(t)
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok)
  t.equal(v.records, 20)
  t.equal(v.lastSeq, 20)
})

t.test('an edited record is caught at its seq', async (t) => {
  const j = await filled(t)
  const bytes = Buffer.from(j.dbs.records.getBinary(7)!)
  const at = bytes.indexOf('t/6')
  bytes.write('t/X', at) // same length: only the hash can tell
  j.dbs.records.putSync(7, bytes)
  const v = await verifyJournal(j.dbs)
  t.notOk(v.ok)
  t.equal(v.brokenAt, 7)
  t.match(v.problem, /edited/)
})

t.test('a deleted record is caught as a gap', async (t) => {
  const j = await filled(t)
  j.dbs.records.removeSync(11)
  const v = await verifyJournal(j.dbs)
  t.notOk(v.ok)
  t.equal(v.brokenAt, 11)
  t.match(v.problem, /missing/)
})

t.test('a deleted first record is caught (no prune anchor explains it)', async (t) => {
  const j = await filled(t)
  j.dbs.records.removeSync(1)
  const v = await verifyJournal(j.dbs)
  t.notOk(v.ok)
  t.equal(v.brokenAt, 1)
})

t.test('reordered records are caught', async (t) => {
  const j = await filled(t)
  const a = j.dbs.records.getBinary(4)!
  const b = j.dbs.records.getBinary(5)!
  j.dbs.records.putSync(4, b)
  j.dbs.records.putSync(5, a)
  const v = await verifyJournal(j.dbs)
  t.notOk(v.ok)
  t.equal(v.brokenAt, 4)
  t.match(v.problem, /reordered/)
})

t.test('a re-chained edit (hashes recomputed) is caught by the signed checkpoint', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  for (let i = 0; i < 5; i++) j.record({ type: 'connect', clientId: `c${i}` })
  await j.flush()
  const key = await ensureGatewayKey(dir)
  t.ok(key.created)
  const jws = await new CheckpointSigner(key).sign({ gw: 'gw-test', seq: 5, hash: j.lastHash })
  j.dbs.checkpoints.putSync(5, jws)
  t.same(await verifyCheckpoint(jws, key.publicJwk), { gw: 'gw-test', seq: 5, hash: j.lastHash })
  t.ok((await verifyJournal(j.dbs, key.publicJwk)).ok)
  t.notOk((await verifyJournal(j.dbs)).ok, 'checkpoints without a key to check them do not pass')

  // forge: rewrite the whole chain from seq 3 with a changed record (as an attacker with the file could)
  const { sealRecord, decodeRecord } = await import('../../src/journal/codec.js')
  let prev = decodeRecord(j.dbs.records.getBinary(3)!).prev
  for (let s = 3; s <= 5; s++) {
    const { hash: _h, ...r } = decodeRecord(j.dbs.records.getBinary(s)!) as unknown as Record<string, unknown>
    if (s === 3) r.clientId = 'someone-else'
    r.prev = prev
    const sealed = sealRecord(r, prev)
    j.dbs.records.putSync(s, sealed.bytes)
    prev = sealed.hash
  }
  const v = await verifyJournal(j.dbs, key.publicJwk)
  t.notOk(v.ok, 'the chain alone is consistent, the checkpoint is not')
  t.equal(v.brokenAt, 5)
  t.match(v.problem, /checkpoint/)

  // a checkpoint signed by another key does not verify
  const other = await ensureGatewayKey(tempDir(t))
  j.dbs.checkpoints.putSync(5, await new CheckpointSigner(other).sign({ gw: 'gw-test', seq: 5, hash: prev }))
  const v2 = await verifyJournal(j.dbs, key.publicJwk)
  t.notOk(v2.ok)
  t.match(v2.problem, /signature/)
})
