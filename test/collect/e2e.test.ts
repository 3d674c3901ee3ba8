import t from 'tap'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { createGateway } from '../../src/index.js'
import { silentLogger } from '../../src/logger.js'
import { mintToken } from '../../src/identity/mint.js'
import { LmdbJournal } from '../../src/journal/lmdb.js'
import { gatewayKeyPaths } from '../../src/journal/signing.js'
import { migrate } from '../../src/collect/migrate.js'
import { PgStore } from '../../src/collect/pg-store.js'
import { KeyRing } from '../../src/collect/keys.js'
import { Collector } from '../../src/collect/collector.js'
import { OPEN_POLICY_DIR, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startPostgres } from '../helpers/postgres.js'
import { SimGateway } from './fleet-sim.js'

const pgsrv = await startPostgres(t)
const db = new pg.Client(pgsrv.url)
await db.connect()
t.teardown(() => db.end())
await migrate(db)
const count = async (gw: string): Promise<number> => (await db.query(`SELECT count(*)::int AS n FROM audit_records WHERE gateway_id = $1`, [gw])).rows[0].n as number

async function until(fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('a real gateway ships its LMDB journal to Mosquitto; the collector verifies and stores every record', async (t) => {
  const cloud = await startMosquitto(t)
  const dir = tempDir(t)
  const gw = await createGateway({
    env: {}, cwd: dir,
    overrides: {
      gateway: { id: 'gw-real', fleet: 'acme', dataDir: dir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '100000/s' },
      policies: { dir: OPEN_POLICY_DIR, watch: false },
      journal: { recordPayloads: 'masked' },
      upstream: { url: cloud.url, clientId: 'gw-real', reconnect: { minMs: 50, maxMs: 200 }, audit: { batchRecords: 50, batchMs: 100 } },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  const journal = gw.journal as LmdbJournal
  // provisioning: the gateway's public key (what `keys show` prints) as <gateway id>.pub.jwk
  const keys = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keys, { recursive: true, force: true }))
  copyFileSync(gatewayKeyPaths(dir).pub, join(keys, 'gw-real.pub.jwk'))

  const store = new PgStore({ url: pgsrv.url })
  const col = new Collector({ upstream: cloud.url, sink: store, keys: new KeyRing(keys, (g) => store.pinnedKey(g)), logger: silentLogger, group: 'e2e', clientId: 'e2e-col' })
  await col.start()
  t.teardown(async () => { await col.stop(); await store.close() })

  const dev = await connect(t, `mqtt://127.0.0.1:${gw.address('mqtt')!.port}`, { clientId: 'dev-1', password: await mintToken(gw.devKey!.privateJwk, { sub: 'dev-1', ttlSec: 3600 }) })
  for (let i = 0; i < 200; i++) await dev.publishAsync('site/1/dev/dev-1/telemetry', `reading ${i}`, { qos: 1 })
  await until(async () => (await count('gw-real')) === journal.committedSeq && journal.shippedSeq === journal.committedSeq)
  const n = await count('gw-real')
  t.ok(n >= 201, `every journal record stored (${n}: connect + 200 publishes + …)`)
  const pubs = (await db.query(`SELECT seq, client_id, topic, type FROM audit_records WHERE gateway_id = 'gw-real' AND type = 'publish' ORDER BY seq`)).rows
  t.equal(pubs.length, 200)
  t.match(pubs[0], { client_id: 'dev-1', topic: 'site/1/dev/dev-1/telemetry' })
  t.same((await db.query(`SELECT head_seq::int AS s FROM gateways WHERE gateway_id = 'gw-real'`)).rows, [{ s: journal.committedSeq }])
  t.same((await db.query('SELECT * FROM gaps')).rows, [])
  t.same((await db.query('SELECT * FROM tamper')).rows, [])
  const pubJwk = JSON.parse(readFileSync(gatewayKeyPaths(dir).pub, 'utf8')) as { x: string }
  t.equal((await db.query(`SELECT public_jwk->>'x' AS x FROM gateways WHERE gateway_id = 'gw-real'`)).rows[0].x, pubJwk.x, 'key pinned in the store')
})

t.test('a store failure leaves the batch unacknowledged; the broker redelivers it and it is stored once', async (t) => {
  const cloud = await startMosquitto(t)
  const keys = mkdtempSync(join(tmpdir(), 'ew-keys-'))
  t.teardown(() => rmSync(keys, { recursive: true, force: true }))
  const g = await SimGateway.create('gw-retry')
  g.writeKey(keys)
  const store = new PgStore({ url: pgsrv.url })
  const col = new Collector({ upstream: cloud.url, sink: store, keys: new KeyRing(keys), logger: silentLogger, group: 'retry', clientId: 'retry-col', mqtt: { reconnectPeriod: 200 } })
  await col.start()
  t.teardown(async () => { await col.stop(); await store.close() })
  const pub = await connect(t, cloud.url, { clientId: 'shipper-retry' })
  await pub.publishAsync(g.topic, await g.next(100), { qos: 1 })
  await until(async () => (await count('gw-retry')) === 100)

  // a real failure: the table the transaction needs is gone for a moment
  await db.query('ALTER TABLE gateways RENAME TO gateways_away')
  await pub.publishAsync(g.topic, await g.next(100), { qos: 1 })
  await until(async () => col.stats.failures >= 1)
  t.equal(await count('gw-retry'), 100, 'nothing stored while the store fails')
  await db.query('ALTER TABLE gateways_away RENAME TO gateways')
  await until(async () => (await count('gw-retry')) === 200)
  t.equal(col.stats.inserted, 200, 'the redelivered batch stored once')
  t.same((await db.query(`SELECT * FROM gaps WHERE gateway_id = 'gw-retry'`)).rows, [])
})
