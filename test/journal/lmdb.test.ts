import t, { type Test } from 'tap'
import { compactDecrypt, exportJWK, generateKeyPair } from 'jose'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../helpers/gateway.js'
import { openJournal } from './helpers.js'
import { decodeRecord, GENESIS } from '../../src/journal/codec.js'
import type { LmdbJournal } from '../../src/journal/lmdb.js'
import { verifyJournal } from '../../src/journal/verify.js'
import { loadSealer } from '../../src/journal/seal.js'
import { ManualClock } from '../../src/clock.js'
import type { JournalEntry } from '../../src/journal/types.js'

t.test('append: gapless seqs, hash chain, resolves after commit, survives reopen', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  const seqs = await Promise.all(Array.from({ length: 5000 }, (_, i) => j.append({ type: 'publish', clientId: 'c1', topic: `t/${i}`, qos: 1 })))
  t.same(seqs, Array.from({ length: 5000 }, (_, i) => i + 1), 'seqs are 1..n in append order')
  const r1 = j.dbs.records.getBinary(1)!
  const rec1 = decodeRecord(r1)
  t.equal(rec1.prev, GENESIS)
  t.equal(rec1.gw, 'gw-test')
  t.equal(rec1.topic, 't/0')
  t.notOk('session' in rec1, 'undefined fields are not written')
  t.equal(decodeRecord(j.dbs.records.getBinary(2)!).prev, rec1.hash, 'prev links to the previous hash')
  t.equal(j.committedSeq, 5000)
  const head = j.lastHash
  await j.close()

  const j2 = openJournal(t, dir)
  t.equal(j2.lastSeq, 5000, 'reopen recovers the last seq')
  t.equal(j2.lastHash, head, 'and the last hash')
  t.equal(await j2.append({ type: 'disconnect', clientId: 'c1' }), 5001)
  j2.record({ type: 'connect', clientId: 'c2' })
  await j2.flush()
  t.equal(decodeRecord(j2.dbs.records.getBinary(5001)!).prev, head, 'the chain continues across restarts')
  const v = await verifyJournal(j2.dbs)
  t.ok(v.ok, v.problem ?? "verifies")
  t.equal(v.records, 5002)
})

/** A journal holding n shipped records, then 8 days later: all n are due for pruning. */
async function withExpiredShipped(t: Test, n: number): Promise<{ dir: string; clock: ManualClock; j: LmdbJournal }> {
  const dir = tempDir(t)
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'))
  const j = openJournal(t, dir, { clock })
  for (let i = 0; i < n; i++) await j.append({ type: 'publish', clientId: 'c1', topic: `old/${i}`, qos: 1 })
  await j.markShipped(n)
  clock.advance(8 * 86_400_000)
  return { dir, clock, j }
}

/** The bytes of the records in LMDB, but for the key left out. */
function bytesOnDisk(j: LmdbJournal, except?: number): number {
  let n = 0
  for (const { key, value } of j.dbs.records.getRange()) if (key !== except) n += value.length
  return n
}

t.test('commit: resolves once the record is on disk, with its own commit group\'s promise; refused after close', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  const a = j.commit({ type: 'publish', clientId: 'c1', topic: 'a', qos: 1 })
  const b = j.commit({ type: 'publish', clientId: 'c1', topic: 'b', qos: 1 })
  t.equal(a, b, 'records of one group share their promise')
  await a
  t.equal(j.committedSeq, 2, 'both committed when it resolves')
  t.equal(decodeRecord(j.dbs.records.getBinary(2)!).topic, 'b', 'and readable from LMDB')
  t.equal(await j.append({ type: 'publish', clientId: 'c1', topic: 'c', qos: 1 }), 3, 'append and commit share one numbering')
  // one synchronous burst past a group's size (2,048 records): the record after the boundary is
  // in the next group, and each promise is its own record's group's
  const ps = Array.from({ length: 2049 }, (_, i) => j.commit({ type: 'publish', clientId: 'c1', topic: `burst/${i}`, qos: 1 }))
  t.equal(ps[2047], ps[0], 'a full group: one promise')
  t.not(ps[2048], ps[2047], 'the record past the boundary has the next group\'s')
  await ps[2047]
  t.ok(j.committedSeq >= 3 + 2048, 'the first group is committed when its promise resolves')
  await ps[2048]
  t.equal(j.committedSeq, 3 + 2049, 'and the second when its own does')
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? 'verifies')
  await j.close()
  await t.rejects(j.commit({ type: 'publish', clientId: 'c1', topic: 'e', qos: 1 }), /journal closed/, 'a closed journal refuses')
})

t.test('a commit group that fails stores nothing: its promise rejects, the chain and the byte count stay with the disk, its prunes are undone', async (t) => {
  const { j } = await withExpiredShipped(t, 5)
  const head = j.lastHash
  // a later seq already in the journal (another writer, a damaged file): the writer's append is
  // refused; the same group carries the prune of the 5 shipped, expired records
  j.dbs.records.putSync(1_000, Buffer.from('stray'))
  t.equal(j.pruneExpired(), 5, 'five records to prune')
  t.equal(j.firstSeq, 6)
  const failed = j.commit({ type: 'publish', clientId: 'c1', topic: 'lost', qos: 1 })
  await t.rejects(failed, /not stored: the journal holds a later seq/, 'the group\'s promise rejects')
  j.dbs.records.resetReadTxn()
  t.equal(j.lastHash, head, 'the chain\'s head is still the last record on disk')
  t.notOk(j.dbs.records.getBinary(6), 'nothing of the group is stored')
  t.ok(j.dbs.records.getBinary(1), 'nor are its prunes done')
  t.equal(j.firstSeq, 1, 'the first record kept is the first of them again')
  t.equal(j.bytes, bytesOnDisk(j, 1_000), 'the byte count is what the journal holds')
  j.dbs.records.removeSync(1_000)
  t.equal(j.pruneExpired(), 5, 'pruning finds them again')
  const seq = await j.append({ type: 'publish', clientId: 'c1', topic: 'after', qos: 1 })
  t.equal(seq, 7, 'the failed record\'s seq stays used')
  j.dbs.records.resetReadTxn()
  t.equal(decodeRecord(j.dbs.records.getBinary(7)!).prev, head, 'the next record chains to the last one stored')
  t.notOk(j.dbs.records.getBinary(1), 'and the prunes went with its group')
  t.equal(j.bytes, bytesOnDisk(j), 'the byte count is what the journal holds')
  const v = await verifyJournal(j.dbs)
  t.notOk(v.ok, 'verify reports the failed group')
  t.match(v.problem, /records 6\.\.6 are missing/)
})

t.test('a prune committed alone while a large group is still being written: a reopened journal counts its bytes once', async (t) => {
  const { dir, clock, j } = await withExpiredShipped(t, 5)
  // one full group (2,048 records of 4 KiB: tens of ms to seal and write) goes to the writer at
  // once; the prune after it is a group of its own, sent while the writer is still on the first,
  // when this thread's committed seq is still 5
  const payload = Buffer.alloc(4096, 7)
  const big = Array.from({ length: 2048 }, (_, i) => j.append({ type: 'publish', clientId: 'c1', topic: `big/${i}`, qos: 1, payload }))
  await new Promise((r) => setImmediate(r))
  t.equal(j.committedSeq, 5, 'the large group is with the writer, not committed')
  t.equal(j.pruneExpired(), 5, 'the prune goes in a group of its own')
  await Promise.all(big)
  await j.flush()
  const bytes = j.bytes
  await j.close()
  const j2 = openJournal(t, dir, { clock })
  t.equal(j2.bytes, bytesOnDisk(j2), 'the reopened journal counts each record once')
  t.equal(j2.bytes, bytes, 'as the journal did before it closed')
})

t.test('a burst larger than a commit group: many groups in flight, commits in order, flush returns, the head is the newest record', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  // 30,000 records in one synchronous burst: full groups go to the writer while the burst goes on,
  // more of them than the in-flight bound, and their answers can come back out of order
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10_000; i++) j.record({ type: 'publish', clientId: 'c1', topic: `t/${i}`, qos: 0, payload: Buffer.from(`p${round}-${i}`) })
    const acked = Promise.all(Array.from({ length: 3000 }, (_, i) => j.append({ type: 'publish', clientId: 'c2', topic: `a/${i}`, qos: 1 })))
    const seqs = await acked
    t.same(seqs.slice(0, 2), [round * 13_000 + 10_001, round * 13_000 + 10_002], 'appends numbered after the burst')
    await j.flush()
    const last = round * 13_000 + 13_000
    t.equal(j.committedSeq, last, `round ${round}: everything committed`)
    t.equal(j.lastHash, decodeRecord(j.dbs.records.getBinary(last)!).hash, 'the head is the newest record, never an older group\'s')
  }
  t.equal(Buffer.from(decodeRecord(j.dbs.records.getBinary(23_000)!).payload!).toString(), 'p1-9999', 'payloads travel with their records')
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? 'verifies')
  t.equal(v.records, 39_000)
})

t.test('records of changing shapes in one group come back field for field, in their order', async (t) => {
  const dir = tempDir(t)
  const j = openJournal(t, dir)
  // one synchronous run: one commit group. Shapes repeat, grow, shrink, change a name in the
  // middle; payloads come and go; values nest; reserved names and undefined values are left out
  const entries = [
    { type: 'publish', clientId: 'a', topic: 't/1', qos: 0, payload: Buffer.from('one') },
    { type: 'publish', clientId: 'a', topic: 't/2', qos: 0, payload: Buffer.from('two') },
    { type: 'publish', clientId: 'a', topic: 't/3', qos: 1 },
    { type: 'publish', clientId: 'a', topic: 't/4', qos: 1, payload: Buffer.alloc(0), masks: ['m1', 'm2'], masked: { email: 2 } },
    { type: 'publish', clientId: 'b', sub: undefined, topic: 't/5', qos: 0, payload: 'text payload' },
    { type: 'connect', clientId: 'a', seq: 99, prev: 'x', hash: 'y', gw: 'forged', ts: 1 },
    { type: 'connect', session: 's1', clientId: 'a' },
    { type: 'publish', clientId: 'a', topic: 't/1', qos: 0, payload: Buffer.from('again') },
  ] as unknown as JournalEntry[]
  for (const e of entries) j.record(e)
  await j.flush()
  t.equal(j.groupsCommitted, 1, 'one group')
  const got = entries.map((_, i) => decodeRecord(j.dbs.records.getBinary(i + 1)!) as unknown as Record<string, unknown>)
  const strip = (r: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(r)) if (!['seq', 'ts', 'gw', 'prev', 'hash'].includes(k)) out[k] = v instanceof Uint8Array ? Buffer.from(v).toString() : v
    return out
  }
  const want = entries.map((e) => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(e as Record<string, unknown>)) if (v !== undefined && !['seq', 'ts', 'gw', 'prev', 'hash'].includes(k)) out[k] = Buffer.isBuffer(v) ? v.toString() : v
    return out
  })
  got.forEach((r, i) => {
    t.same(strip(r), want[i], `record ${i + 1}`)
    t.same(Object.keys(r), ['seq', 'ts', 'gw', ...Object.keys(want[i]!), 'prev', 'hash'], `record ${i + 1}: fields in order`)
    t.equal(r.gw, 'gw-test')
  })
  t.ok(got[3]!.payload instanceof Uint8Array && (got[3]!.payload as Uint8Array).length === 0, 'an empty binary payload stays binary')
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? 'verifies')
})

t.test('recordPayloads: none drops payloads, masked keeps them, sealed holds a JWE to sealTo', async (t) => {
  const payload = Buffer.from('{"temp":21}')
  const none = openJournal(t, tempDir(t), { recordPayloads: 'none' })
  const s1 = await none.append({ type: 'publish', topic: 'a', payload })
  t.notOk('payload' in decodeRecord(none.dbs.records.getBinary(s1)!))

  const masked = openJournal(t, tempDir(t), { recordPayloads: 'masked' })
  const s2 = await masked.append({ type: 'publish', topic: 'a', payload })
  t.same(Buffer.from(decodeRecord(masked.dbs.records.getBinary(s2)!).payload!), payload)

  const dir = tempDir(t)
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { extractable: true })
  const pubFile = join(dir, 'auditor.pub.jwk')
  writeFileSync(pubFile, JSON.stringify(await exportJWK(publicKey)))
  const sealed = openJournal(t, dir, { recordPayloads: 'sealed', sealer: await loadSealer(pubFile) })
  // order is kept even though sealing is async
  const seqs = await Promise.all([
    sealed.append({ type: 'publish', topic: 'a', payload }),
    sealed.append({ type: 'subscribe', topic: 'b' }),
    sealed.append({ type: 'publish', topic: 'c', payload: Buffer.from('x') }),
  ])
  t.same(seqs, [1, 2, 3])
  const rec = decodeRecord(sealed.dbs.records.getBinary(1)!)
  t.notOk('payload' in rec, 'no clear payload')
  t.type(rec.sealed, 'string')
  const { plaintext } = await compactDecrypt(rec.sealed!, privateKey)
  t.same(Buffer.from(plaintext), payload, 'the auditor key opens it')
  t.equal(decodeRecord(sealed.dbs.records.getBinary(3)!).topic, 'c')
  t.ok((await verifyJournal(sealed.dbs)).ok)
  await t.rejects(loadSealer(undefined), { code: 'EW_CONFIG_INVALID' })
  await t.rejects(loadSealer(join(dir, 'nope.jwk')), { code: 'EW_CONFIG_NOT_FOUND' })
})

t.test('retainShippedDays: shipped records older than the window are pruned, the rest verifies', async (t) => {
  const clock = new ManualClock(1_700_000_000_000)
  const j = openJournal(t, tempDir(t), { clock, retainShippedDays: 1 })
  for (let i = 0; i < 10; i++) j.record({ type: 'connect', clientId: `c${i}` })
  await j.flush()
  clock.advance(2 * 86_400_000)
  for (let i = 0; i < 5; i++) j.record({ type: 'connect', clientId: `d${i}` })
  await j.flush()
  t.equal(j.pruneExpired(), 0, 'nothing shipped: nothing pruned')
  await j.markShipped(12)
  j.dbs.checkpoints.putSync(10, 'cp-10')
  j.dbs.checkpoints.putSync(12, 'cp-12')
  t.equal(j.pruneExpired(), 10, 'old shipped records pruned; shipped but recent kept')
  await j.flush()
  t.same([...j.dbs.checkpoints.getKeys()], [12], 'checkpoints of pruned records pruned too')
  j.dbs.checkpoints.removeSync(12)
  t.equal(j.firstSeq, 11)
  const v = await verifyJournal(j.dbs)
  t.ok(v.ok, v.problem ?? "verifies")
  t.equal(v.firstSeq, 11)
})

t.test('an appended payload is not kept by the journal once its record is written (nor the chunk it is a slice of)', async (t) => {
  const { setFlagsFromString } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const settle = async (): Promise<number> => {
    for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 20)) }
    return process.memoryUsage().arrayBuffers
  }
  const j = openJournal(t, tempDir(t))
  await j.append({ type: 'connect', clientId: 'warm' })
  const base = await settle()
  // a 64-byte payload sliced from a 64 MiB read: the slice keeps the whole ArrayBuffer alive
  j.record({ type: 'publish', clientId: 'c1', topic: 't/a', qos: 0, payload: Buffer.allocUnsafeSlow(64 * 2 ** 20).subarray(0, 64) })
  await j.flush()
  // shorter records after it (fewer fields than the payload's position)
  for (let i = 0; i < 100; i++) j.record({ type: 'disconnect', clientId: `c${i}` })
  await j.flush()
  const grown = (await settle()) - base
  t.ok(grown < 16 * 2 ** 20, `array buffers grew ${(grown / 2 ** 20).toFixed(1)} MiB (the 64 MiB chunk is not held)`)
})
