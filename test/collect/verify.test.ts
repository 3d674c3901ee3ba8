import t from 'tap'
import { gzipSync } from 'node:zlib'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { silentLogger } from '../../src/logger.js'
import { packr } from '../../src/journal/codec.js'
import { encodeBatch } from '../../src/journal/batch.js'
import { Collector } from '../../src/collect/collector.js'
import { KeyRing } from '../../src/collect/keys.js'
import { JsonlStore } from '../../src/collect/jsonl-store.js'
import { topicGateway } from '../../src/collect/verify.js'
import { tempDir } from '../helpers/gateway.js'
import { SimGateway } from './fleet-sim.js'

t.test('hostile and inconsistent batches are refused into tamper; nothing of them is stored', async (t) => {
  const dir = tempDir(t)
  const g = await SimGateway.create('gw-h')
  g.writeKey(join(dir, 'keys'))
  const col = new Collector({ upstream: '', sink: new JsonlStore(join(dir, 'out')), keys: new KeyRing(join(dir, 'keys')), logger: silentLogger, maxBatchBytes: 1024 * 1024 })
  const good = await g.batch(g.records(10))
  const cases: Array<[string, string, Buffer, RegExp]> = [
    ['not gzip', g.topic, Buffer.from('hello'), /not an audit batch/],
    ['gzip of something else', g.topic, gzipSync(packr.pack({ v: 2, hi: 1 })), /not an audit batch/],
    ['oversized', g.topic, Buffer.alloc(2 * 1024 * 1024), /over the limit/],
    ['topic names another gateway', 'fleet/acme/gw-other/audit', await encodeBatch(good), /topic names gateway gw-other, batch gw-h/],
    ['gateway id with path characters', 'fleet/acme/x/audit', await encodeBatch({ ...good, gw: '../keys/gw-h' }), /topic names gateway|no public key/],
    ['checkpoint for another seq', g.topic, await encodeBatch({ ...good, last: 9, records: good.records.slice(0, 9) }), /checkpoint signs seq 10, batch ends at 9/],
    ['records swapped', g.topic, await encodeBatch({ ...good, records: [good.records[1]!, good.records[0]!, ...good.records.slice(2)] }), /has seq 2, expected 1/],
    ['a record dropped from the middle', g.topic, await encodeBatch({ ...good, records: [...good.records.slice(0, 5), ...good.records.slice(6)] }), /batch 1\.\.10 holds 9 records/],
    ['a record dropped, first shifted to hide it', g.topic, await encodeBatch({ ...good, first: 2, records: [...good.records.slice(0, 5), ...good.records.slice(6)] }), /has seq 1, expected 2/],
    ['checkpoint of another batch', g.topic, await encodeBatch({ ...good, checkpoint: (await g.batch(g.records(1))).checkpoint }), /checkpoint signs seq 11/],
  ]
  for (const [what, topic, payload, reason] of cases) {
    const r = await col.ingest(topic, payload)
    t.match(r, { tamper: reason }, what)
  }
  t.equal(col.stats.tamper, cases.length)
  const tamper = readFileSync(join(dir, 'out', 'tamper.jsonl'), 'utf8').trim().split('\n')
  t.equal(tamper.length, cases.length, 'each one recorded')
  t.notOk(tamper.some((l) => l.includes('"payload"')), 'JSONL tamper lines carry no payload')
  t.match(await col.ingest(g.topic, await encodeBatch(good)), { inserted: 10 }, 'the genuine batch still goes in')
  const broken = await SimGateway.create('gw-broken')
  writeFileSync(join(dir, 'keys', 'gw-broken.pub.jwk'), '{"kty": "OKP", "crv": "Ed25519", "x": 12')
  t.match(await col.ingest(broken.topic, await broken.next(5)), { tamper: /public key for gateway gw-broken is unusable/ }, 'a broken key file is a refusal, not a batch left unacknowledged forever')
})

t.test('topicGateway reads fleet/<fleet>/<gw>/audit only', async (t) => {
  t.equal(topicGateway('fleet/acme/gw-1/audit'), 'gw-1')
  t.equal(topicGateway('fleet/acme/gw-1/other'), undefined)
  t.equal(topicGateway('custom/audit'), undefined)
})
