import t from 'tap'
import type { Test } from 'tap'
import mqtt from 'mqtt'
import { tempDir } from '../helpers/gateway.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { waitFor } from '../helpers/wait.js'
import { openJournal } from './helpers.js'
import { Shipper, MAX_BATCH_BYTES, type AuditLink } from '../../src/journal/shipper.js'
import { CheckpointSigner, ensureGatewayKey } from '../../src/journal/signing.js'
import { decodeBatch } from '../../src/journal/batch.js'
import { ChainFollower } from '../../src/journal/follow.js'
import { silentLogger } from '../../src/logger.js'

/** An MQTT.js client to a real Mosquitto as the shipper's link (the bridge's link has the same shape). */
async function mqttLink(t: Test, url: string): Promise<AuditLink> {
  const c = await mqtt.connectAsync(url, { clientId: 'gw-ship', protocolVersion: 4, reconnectPeriod: 0 })
  t.teardown(() => c.endAsync(true))
  return {
    get connected() { return c.connected },
    publish: (topic, payload, o) => c.publishAsync(topic, payload, o).then(() => {}),
    on: (e, fn) => c.on(e === 'up' ? 'connect' : 'close', fn),
    off: (e, fn) => c.off(e === 'up' ? 'connect' : 'close', fn),
  }
}

t.test('batches by size (records and bytes) and by age, each verifying at the receiver', async (t) => {
  const cloud = await startMosquitto(t)
  const dir = tempDir(t)
  const j = openJournal(t, dir, { gw: 'gw-ship' })
  const key = await ensureGatewayKey(dir)
  const rx = await mqtt.connectAsync(cloud.url, { clientId: 'rx', protocolVersion: 4, reconnectPeriod: 0 })
  t.teardown(() => rx.endAsync(true))
  await rx.subscribeAsync('audit/#', { qos: 1 })
  const batches: Buffer[] = []
  rx.on('message', (_t, p) => batches.push(p))

  // 12 records of 300 KB: the byte cap splits them although batchRecords allows 100
  const big = Buffer.alloc(300 * 1024, 0x61)
  for (let i = 0; i < 12; i++) j.record({ type: 'publish', topic: `t/${i}`, payload: big })
  await j.flush()
  const shipper = new Shipper({ journal: j, link: await mqttLink(t, cloud.url), signer: new CheckpointSigner(key), topic: 'audit/gw-ship', fleet: 'acme', batchRecords: 100, batchMs: 60_000, logger: silentLogger })
  shipper.start()
  t.teardown(() => shipper.stop())
  // 12 < batchRecords and far younger than batchMs... except the byte cap makes full batches
  await waitFor(() => j.shippedSeq >= 9, 10_000, 'byte-capped batches shipped')
  const follower = new ChainFollower(key.publicJwk, 'gw-ship')
  await waitFor(() => batches.length >= 3, 5000, 'batches at the receiver')
  for (const b of batches.splice(0)) {
    const d = await decodeBatch(b)
    t.ok(d.records.reduce((n, r) => n + r.length, 0) <= MAX_BATCH_BYTES, `batch ${d.first}..${d.last} within the byte cap`)
    const r = await follower.accept(d)
    t.notOk(r.problem, r.problem ?? 'verifies')
  }
  t.ok(j.shippedSeq < 12, 'the remainder waits for batchMs (it is neither full nor old)')

  // by age: a tiny batch goes once its oldest record is batchMs old
  await shipper.stop()
  const quick = new Shipper({ journal: j, link: await mqttLink(t, cloud.url), signer: new CheckpointSigner(key), topic: 'audit/gw-ship', fleet: 'acme', batchRecords: 1000, batchMs: 100, logger: silentLogger })
  quick.start()
  t.teardown(() => quick.stop())
  j.record({ type: 'connect', clientId: 'late' })
  await waitFor(() => j.shippedSeq === 13, 10_000, 'the age-triggered batch')
  await waitFor(() => batches.length > 0, 5000)
  for (const b of batches.splice(0)) t.notOk((await follower.accept(await decodeBatch(b))).problem)
  t.equal(follower.nextSeq, 14, 'receiver has every record once')
  t.equal([...j.dbs.checkpoints.getKeys()].length >= 4, true, 'a checkpoint kept per batch')
})
