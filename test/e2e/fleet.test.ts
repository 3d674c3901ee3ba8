import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { exportJWK, generateKeyPair } from 'jose'
import mqtt from 'mqtt'
import type { Test } from 'tap'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { signBundle } from '../../src/fleet/bundle.js'

const run = promisify(execFile)
const BASELINE = `rules:\n  - { id: local-telemetry, effect: allow, actions: [publish, subscribe], topics: ['site/+/telemetry'] }\n`
const V2 = `rules:\n  - { id: fleet-telemetry, effect: allow, actions: [publish, subscribe], topics: ['site/+/telemetry', 'site/+/alarms'] }\n`
const V3 = `rules:\n  - { id: fleet-alarms-only, effect: allow, actions: [publish, subscribe], topics: ['site/+/alarms'] }\n`

async function linkUp(gw: { bridge?: { link: { connected: boolean } } }): Promise<void> {
  for (let i = 0; i < 200 && !gw.bridge?.link.connected; i++) await new Promise((r) => setTimeout(r, 25))
  // the subscriptions follow the CONNACK
  await new Promise((r) => setTimeout(r, 100))
}

async function setup(t: Test) {
  const dir = tempDir(t)
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true })
  const priv = await exportJWK(privateKey)
  writeFileSync(join(dir, 'fleet.jwk'), JSON.stringify(priv))
  writeFileSync(join(dir, 'fleet.pub.jwk'), JSON.stringify(await exportJWK(publicKey)))
  mkdirSync(join(dir, 'policies'))
  writeFileSync(join(dir, 'policies', 'base.yaml'), BASELINE)
  const cloud = await startMosquitto(t)
  const cfg = (dataDir?: string) => ({
    gateway: { id: 'gw-1', fleet: 'acme', ...(dataDir ? { dataDir } : {}) },
    policies: { dir: join(dir, 'policies'), watch: false },
    upstream: { url: cloud.url, clientId: 'gw-1', reconnect: { minMs: 50, maxMs: 200 } },
    fleet: { policyTopic: 'fleet/acme/policy', publicKey: join(dir, 'fleet.pub.jwk') },
  })
  const observer = await mqtt.connectAsync(cloud.url, { clientId: 'ops-console', reconnectPeriod: 0 })
  t.teardown(() => observer.endAsync(true))
  const statuses: Record<string, unknown>[] = []
  observer.on('message', (topic, payload) => { if (topic === 'fleet/acme/policy/status/gw-1') statuses.push(JSON.parse(payload.toString())) })
  await observer.subscribeAsync('fleet/acme/policy/status/gw-1', { qos: 1 })
  const push = async (jws: string, topic = 'fleet/acme/policy') => observer.publishAsync(topic, jws, { qos: 1, retain: true })
  const waitStatus = async (n: number) => {
    for (let i = 0; i < 100 && statuses.length < n; i++) await new Promise((r) => setTimeout(r, 50))
    return statuses[n - 1]
  }
  return { dir, priv, cloud, cfg, push, statuses, waitStatus }
}

t.test('a signed bundle replaces the local baseline, re-checks live subscriptions, survives a reboot without network; bad ones change nothing', async (t) => {
  const s = await setup(t)
  const g = await startGateway(t, s.cfg())
  await linkUp(g.gw)
  const dev = await connect(t, g.url(), { clientId: 'dev-1', password: await g.token({ sub: 'dev-1' }) })
  await dev.subscribeAsync('site/1/telemetry', { qos: 0 })
  await t.rejects(dev.subscribeAsync('site/1/alarms', { qos: 0 }), 'baseline: alarms not allowed')

  const bundle = (version: number, files: Record<string, string>, target = ['*']) => signBundle({ fleet: 'acme', version, issuedAt: new Date().toISOString(), target, files }, s.priv)
  await s.push(await bundle(2, { 'fleet.yaml': V2 }))
  t.match(await s.waitStatus(1), { version: 2, applied: true })
  t.match(g.journal.entries.find((e) => e.type === 'policy_applied'), { source: 'fleet', version: 2 })
  const granted = await dev.subscribeAsync('site/1/alarms', { qos: 0 })
  t.equal(granted[0]!.qos, 0, 'the bundle allows alarms now')

  // rollback, wrong signature, other gateway, unlintable: nothing changes
  await s.push(await bundle(1, { 'fleet.yaml': V3 }))
  t.match(await s.waitStatus(2), { version: 2, applied: false, rejectedVersion: 1, error: /not_newer/ })
  const { privateKey } = await generateKeyPair('EdDSA', { extractable: true })
  await s.push(await signBundle({ fleet: 'acme', version: 9, issuedAt: '', target: ['*'], files: { 'x.yaml': V3 } }, await exportJWK(privateKey)))
  t.match(await s.waitStatus(3), { applied: false, error: /bad_signature/ })
  await s.push(await bundle(9, { 'x.yaml': V3 }, ['gw-2']))
  t.match(await s.waitStatus(4), { applied: false, error: /not_targeted/ })
  await s.push(await bundle(9, { 'x.yaml': 'rules:\n  - { id: broken, effect: maybe }\n' }))
  t.match(await s.waitStatus(5), { applied: false, error: /lint/ })
  t.equal(g.journal.entries.filter((e) => e.type === 'policy_rejected').length, 4, 'each rejection journaled')
  t.equal(g.gw.core.policy.revision, g.gw.core.policy.revision)

  // a newer bundle on the per-gateway topic narrows the policy: the live telemetry subscription goes
  await s.push(await bundle(3, { 'fleet.yaml': V3 }), 'fleet/acme/policy/gw-1')
  t.match(await s.waitStatus(6), { version: 3, applied: true })
  await new Promise((r) => setTimeout(r, 100))
  t.match(g.journal.entries.filter((e) => e.type === 'subscribe_denied').at(-1), { topic: 'site/1/telemetry', reason: 'policy_changed' })

  // reboot with the cloud gone: the stored bundle (v3) is in force, not the local baseline
  const dataDir = g.gw.config.gateway.dataDir
  await g.gw.stop()
  await s.cloud.stop()
  const again = await startGateway(t, s.cfg(dataDir))
  const dev2 = await connect(t, again.url(), { clientId: 'dev-1', password: await again.token({ sub: 'dev-1' }) })
  await t.rejects(dev2.subscribeAsync('site/1/telemetry', { qos: 0 }), 'v3 has no telemetry')
  t.equal((await dev2.subscribeAsync('site/1/alarms', { qos: 0 }))[0]!.qos, 0, 'v3 alarms allowed offline after reboot')
})

t.test('CLI: policy bundle lints and signs; policy push publishes it retained', async (t) => {
  const s = await setup(t)
  const g = await startGateway(t, s.cfg())
  await linkUp(g.gw)
  const cli = (args: string[]) => run(process.execPath, ['bin/edgewarden.js', ...args], { env: { ...process.env, EDGEWARDEN_FROM_SOURCE: '1' }, cwd: process.cwd() })
  mkdirSync(join(s.dir, 'v2'))
  writeFileSync(join(s.dir, 'v2', 'fleet.yaml'), V2)
  const { stdout: jws } = await cli(['policy', 'bundle', '--dir', join(s.dir, 'v2'), '--version', '2', '--key', join(s.dir, 'fleet.jwk'), '--fleet', 'acme'])
  t.match(jws.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a compact JWS')
  writeFileSync(join(s.dir, 'bundle.jws'), jws)
  await cli(['policy', 'push', '--upstream', s.cloud.url, '--topic', 'fleet/acme/policy', join(s.dir, 'bundle.jws')])
  t.match(await s.waitStatus(1), { version: 2, applied: true })
  void g
  mkdirSync(join(s.dir, 'bad'))
  writeFileSync(join(s.dir, 'bad', 'p.yaml'), 'rules:\n  - { id: x, effect: allow, actions: [publish], topics: ["a/#/b"] }\n')
  const bad = await cli(['policy', 'bundle', '--dir', join(s.dir, 'bad'), '--version', '3', '--key', join(s.dir, 'fleet.jwk'), '--fleet', 'acme']).then(() => 0, (e: { code: number; stderr: string }) => e)
  t.match(bad, { code: 2, stderr: /p\.yaml/ }, 'an unlintable dir exits 2 naming the file')
})

t.test('two gateways: v1 to all, v2 to one; hostile bundles rejected with status; a live publisher denied by the new policy is refused', async (t) => {
  const s = await setup(t)
  const statusOf: Record<string, Record<string, unknown>[]> = { 'gw-1': s.statuses, 'gw-2': [] }
  const observer2 = await mqtt.connectAsync(s.cloud.url, { clientId: 'ops-2', reconnectPeriod: 0 })
  t.teardown(() => observer2.endAsync(true))
  observer2.on('message', (_topic, payload) => statusOf['gw-2']!.push(JSON.parse(payload.toString())))
  await observer2.subscribeAsync('fleet/acme/policy/status/gw-2', { qos: 1 })
  const wait = async (gw: string, n: number) => {
    for (let i = 0; i < 100 && statusOf[gw]!.length < n; i++) await new Promise((r) => setTimeout(r, 50))
    return statusOf[gw]![n - 1]
  }
  const g1 = await startGateway(t, s.cfg())
  const g2 = await startGateway(t, { ...s.cfg(), gateway: { id: 'gw-2', fleet: 'acme' }, upstream: { url: s.cloud.url, clientId: 'gw-2', reconnect: { minMs: 50, maxMs: 200 } } })
  await linkUp(g1.gw)
  await linkUp(g2.gw)
  const bundle = (version: number, files: Record<string, string>, target = ['*']) => signBundle({ fleet: 'acme', version, issuedAt: new Date().toISOString(), target, files }, s.priv)

  await s.push(await bundle(1, { 'fleet.yaml': V2 }))
  t.match(await wait('gw-1', 1), { version: 1, applied: true })
  t.match(await wait('gw-2', 1), { version: 1, applied: true })
  const pub = await connect(t, g1.url(), { clientId: 'dev-1', password: await g1.token({ sub: 'dev-1' }) })
  await pub.publishAsync('site/1/telemetry', 'ok under v1', { qos: 1 })

  await s.push(await bundle(2, { 'fleet.yaml': V3 }, ['gw-1']))
  t.match(await wait('gw-1', 2), { version: 2, applied: true })
  t.match(await wait('gw-2', 2), { version: 1, applied: false, error: /not_targeted/ }, 'the other gateway keeps v1')
  const rev2 = g2.gw.core.policy.revision

  const good = await bundle(3, { 'fleet.yaml': V2 })
  const [h, p, sig] = good.split('.')
  const tampered = `${h}.${Buffer.from(Buffer.from(p!, 'base64url').toString().replace('alarms', 'secrets')).toString('base64url')}.${sig}`
  const hostile: [string, RegExp][] = [
    [await bundle(1, { 'fleet.yaml': V2 }), /not_newer/],
    [tampered, /bad_signature/],
    ['this is not a JWS', /bad_signature/],
    [await bundle(4, { 'big.yaml': 'x'.repeat(10 * 1024 * 1024) }), /larger than 4 MiB/],
  ]
  let n = 2
  for (const [jws, error] of hostile) {
    await s.push(jws, 'fleet/acme/policy/gw-2')
    t.match(await wait('gw-2', ++n), { version: 1, applied: false, error }, `rejected: ${error}`)
  }
  t.equal(g2.gw.core.policy.revision, rev2, 'gw-2 still runs v1')

  // gw-1 runs v2 (alarms only): the live telemetry publisher is refused from now on (acknowledged, dropped)
  await pub.publishAsync('site/1/telemetry', 'denied under v2', { qos: 1 })
  for (let i = 0; i < 40 && !g1.journal.entries.some((e) => e.type === 'publish_denied'); i++) await new Promise((r) => setTimeout(r, 25))
  t.match(g1.journal.entries.filter((e) => e.type === 'publish_denied').at(-1), { topic: 'site/1/telemetry' })
})
