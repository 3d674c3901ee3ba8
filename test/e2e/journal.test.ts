import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import mqtt from 'mqtt'
import { createGateway, type Gateway } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { mintToken } from '../../src/identity/mint.js'
import { LmdbJournal } from '../../src/journal/lmdb.js'
import { decodeRecord } from '../../src/journal/codec.js'
import { verifyJournal } from '../../src/journal/verify.js'
import { decodeBatch } from '../../src/journal/batch.js'
import { ChainFollower } from '../../src/journal/follow.js'
import { readGatewayPublicKey } from '../../src/journal/signing.js'
import { OPEN_POLICY_DIR, tempDir } from '../helpers/gateway.js'
import { connect, connackCode } from '../helpers/mqtt.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { waitFor } from '../helpers/wait.js'

/** A gateway with its default (LMDB) journal in dataDir; stopped at teardown. */
async function lmdbGateway(t: Test, dataDir: string, overrides: Record<string, unknown> = {}): Promise<{ gw: Gateway; journal: LmdbJournal; url: string; token(sub: string): Promise<string> }> {
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-j', fleet: 'acme', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '100000/s' },
      policies: { dir: OPEN_POLICY_DIR, watch: false },
      ...overrides,
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  t.ok(gw.journal instanceof LmdbJournal, 'the default journal is LMDB')
  return {
    gw, journal: gw.journal as LmdbJournal,
    url: `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`,
    token: (sub) => mintToken(gw.devKey!.privateJwk, { sub, ttlSec: 3600 }),
  }
}

function records(j: LmdbJournal) {
  return [...j.dbs.records.getRange()].map(({ value }) => decodeRecord(value))
}

t.test('QoS 1 publishes are journaled (with payload) before PUBACK; the chain verifies', async (t) => {
  const dir = tempDir(t)
  const g = await lmdbGateway(t, dir, { journal: { recordPayloads: 'masked' } })
  t.ok(existsSync(join(dir, 'keys', 'gateway.jwk')), 'gateway signing key created on first start')
  const c = await connect(t, g.url, { clientId: 'dev-1', password: await g.token('dev-1') })
  for (let i = 0; i < 50; i++) {
    await c.publishAsync(`site/1/dev/dev-1/telemetry`, `reading ${i}`, { qos: 1 })
    // PUBACK came: the record is committed and readable by anyone now
    const last = decodeRecord(g.journal.dbs.records.getBinary(g.journal.committedSeq)!)
    t.equal(Buffer.from(last.payload!).toString(), `reading ${i}`)
  }
  const pubs = records(g.journal).filter((r) => r.type === 'publish')
  t.equal(pubs.length, 50)
  t.equal(pubs[0]!.clientId, 'dev-1')
  t.ok(pubs[0]!.session, 'session id recorded')
  t.ok(records(g.journal).some((r) => r.type === 'connect'))
  const v = await verifyJournal(g.journal.dbs)
  t.ok(v.ok, v.problem ?? 'verifies')
})

t.test('onFull: block refuses publishes (journal_full) but CONNACK stays 0, and recovers once shipped', async (t) => {
  const g = await lmdbGateway(t, tempDir(t), { journal: { maxBytes: '40KB', onFull: 'block', recordPayloads: 'masked' } })
  const c = await connect(t, g.url, { clientId: 'dev-1', password: await g.token('dev-1') })
  const payload = Buffer.alloc(400, 0x62)
  let acked = 0
  for (let i = 0; i < 1000 && g.journal.writable; i++) {
    await c.publishAsync('site/x', payload, { qos: 1 })
    acked++
  }
  t.notOk(g.journal.writable, 'journal blocked')
  t.ok(acked > 20, `${acked} publishes acknowledged before the journal filled`)
  const admin = g.gw.address('admin')!
  const ready = await fetch(`http://127.0.0.1:${admin.port}/readyz`)
  t.equal(ready.status, 503, '/readyz says the journal is not writable')
  t.equal(await connackCode(t, g.url, { clientId: 'dev-2', password: await g.token('dev-2') }), 0, 'CONNACK 0 while full')
  const c2 = await connect(t, g.url, { clientId: 'dev-3', password: await g.token('dev-3') })
  // refused while full: acknowledged (no negative PUBACK in MQTT 3.1.1), dropped, journaled in the reserve
  await c2.publishAsync('site/x', 'refused', { qos: 1 })
  acked++
  t.ok(c2.connected, 'the connection stays')
  // the refusal record gates no acknowledgement: it is written without waiting for its commit
  await g.journal.flush()
  const denied = records(g.journal).filter((r) => r.type === 'publish_denied')
  t.ok(denied.length >= 1)
  t.equal(denied[denied.length - 1]!.reason, 'journal_full')
  const published = records(g.journal).filter((r) => r.type === 'publish').length
  t.equal(published + denied.filter((r) => r.reason === 'journal_full').length, acked, 'every acknowledged publish is in the journal, as published or as refused')

  await g.journal.markShipped(g.journal.committedSeq)
  t.ok(g.journal.writable, 'writable again once shipped records can be pruned')
  const c4 = await connect(t, g.url, { clientId: 'dev-4', password: await g.token('dev-4') })
  await c4.publishAsync('site/x', 'accepted again', { qos: 1 })
  t.ok((await verifyJournal(g.journal.dbs)).ok)
})

t.test('onFull: drop-oldest keeps accepting and journals buffer_dropped', async (t) => {
  const g = await lmdbGateway(t, tempDir(t), { journal: { maxBytes: '40KB', onFull: 'drop-oldest', recordPayloads: 'masked' } })
  const c = await connect(t, g.url, { clientId: 'dev-1', password: await g.token('dev-1') })
  const payload = Buffer.alloc(400, 0x62)
  for (let i = 0; i < 300; i++) await c.publishAsync('site/x', payload, { qos: 1 })
  t.ok(g.journal.writable)
  await g.journal.flush()
  const rs = records(g.journal)
  const drops = rs.filter((r) => r.type === 'buffer_dropped')
  t.ok(drops.length >= 1, 'buffer_dropped written')
  t.ok((drops[0]!.count as number) > 0)
  t.ok(g.journal.bytes <= 40 * 1024)
  const v = await verifyJournal(g.journal.dbs)
  t.ok(v.ok, v.problem ?? 'verifies')
})

t.test('shipping to a real Mosquitto: signed batches, an outage, a restart, nothing lost', async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const dir = tempDir(t)
  const upstream = { url: cloud.url, clientId: 'gw-j', reconnect: { minMs: 50, maxMs: 200 }, audit: { batchRecords: 40, batchMs: 100 } }
  const topic = 'fleet/acme/gw-j/audit'
  // the receiver: a persistent session on the cloud so batches sent while it reconnects wait for it
  const rx = mqtt.connect(cloud.url, { clientId: 'collector', clean: false, reconnectPeriod: 100, protocolVersion: 4 })
  t.teardown(() => new Promise<void>((r) => rx.end(true, {}, () => r())))
  await new Promise((r) => rx.once('connect', r))
  await rx.subscribeAsync(topic, { qos: 1 })
  const batches: Buffer[] = []
  rx.on('message', (_t, p) => batches.push(p))

  let g = await lmdbGateway(t, dir, { upstream })
  const pub = await connect(t, g.url, { clientId: 'dev-1', password: await g.token('dev-1') })
  for (let i = 0; i < 100; i++) await pub.publishAsync('site/1/temp', `a${i}`, { qos: 1 })
  // PUBACK came after the commit: every publish so far is at or below committedSeq
  let mustShip = g.journal.committedSeq
  await waitFor(() => g.journal.shippedSeq >= mustShip, 10_000, 'first records shipped')

  await cloud.stop()
  for (let i = 0; i < 100; i++) await pub.publishAsync('site/1/temp', `b${i}`, { qos: 1 })
  const during = g.journal.shippedSeq
  t.ok(g.journal.committedSeq > during + 90, 'records pile up during the outage')
  mustShip = g.journal.committedSeq
  await cloud.start()
  await waitFor(() => g.journal.shippedSeq >= mustShip, 20_000, 'shipping resumed after the outage')

  // a restart resumes from the persisted seq, not from the start
  pub.end(true)
  const shippedBefore = g.journal.shippedSeq
  await g.gw.stop()
  g = await lmdbGateway(t, dir, { upstream })
  t.ok(g.journal.shippedSeq >= shippedBefore, 'shipped seq survives the restart')
  const pub2 = await connect(t, g.url, { clientId: 'dev-1', password: await g.token('dev-1') })
  for (let i = 0; i < 50; i++) await pub2.publishAsync('site/1/temp', `c${i}`, { qos: 1 })
  mustShip = g.journal.committedSeq
  await waitFor(() => g.journal.shippedSeq >= mustShip, 10_000, 'shipping after restart')
  pub2.end(true)
  t.ok([...g.journal.dbs.checkpoints.getKeys()].length > 3, 'a checkpoint stored per shipped batch')
  await g.gw.stop()

  const last = g.journal.shippedSeq
  await waitFor(() => batches.length > 0 && batches.some((b) => b.length), 5000)
  const follower = new ChainFollower(readGatewayPublicKey(dir)!, 'gw-j')
  const seen = new Set<number>()
  const payloads: string[] = []
  let dups = 0
  await waitFor(async () => {
    while (batches.length) {
      const r = await follower.accept(await decodeBatch(batches.shift()!))
      t.notOk(r.problem, r.problem ?? 'batch verifies')
      t.notOk(r.gap, 'no gap')
      dups += r.duplicates
      for (const rec of r.accepted) {
        t.notOk(seen.has(rec.seq))
        seen.add(rec.seq)
        if (rec.type === 'publish') payloads.push(Buffer.from(rec.payload!).toString())
      }
    }
    return (follower.nextSeq ?? 0) > last
  }, 30_000, 'every shipped record at the receiver').catch((err: Error) => t.fail(`${err.message}: receiver at ${follower.nextSeq}, shipped ${last}`))
  for (let s = 1; s <= last; s++) if (!seen.has(s)) { t.fail(`seq ${s} never arrived`); break }
  t.equal(payloads.filter((p) => /^[abc]\d+$/.test(p)).length, 250, `all 250 publishes arrived exactly once after dedup (receiver at ${follower.nextSeq}, shipped ${last}, ${dups} duplicates)`)
})

t.test('recordPayloads: sealed without masking.sealTo refuses to start (fail closed)', async (t) => {
  const dir = tempDir(t)
  await t.rejects(createGateway({
    env: {}, cwd: dir,
    overrides: { gateway: { id: 'gw-j', dataDir: dir }, listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }], admin: { enabled: false }, log: { level: 'silent' }, policies: { dir: OPEN_POLICY_DIR, watch: false }, journal: { recordPayloads: 'sealed' } },
  }, { logger: silentLogger }), { code: 'EW_CONFIG_INVALID' })
})
