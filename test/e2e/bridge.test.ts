import t, { type Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { waitFor, collect } from '../bridge/util.js'

async function device(t: Test, g: TestGateway, sub: string): Promise<MqttClient> {
  return connect(t, g.url(), { clientId: sub, password: await g.token({ sub }) })
}

t.test('out: templates render the cloud topic, QoS 1 end to end, the outbox empties on PUBACK', async (t) => {
  const cloud = await startMosquitto(t)
  const g = await startGateway(t, {
    upstream: {
      url: cloud.url,
      reconnect: { minMs: 50, maxMs: 200 },
      out: [
        { local: 'site/+/dev/+/telemetry', remote: 'fleet/${fleet}/${gateway.id}/${topic}', qos: 1 },
        { local: 'site/+/alarm/#', remote: 'alarms/${gateway.id}/${topic:2}', qos: 0 },
      ],
    },
  })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  t.ok(g.journal.entries.some((e) => e.type === 'upstream_up'), 'upstream_up journaled')
  const sub = await connect(t, cloud.url, { clientId: 'cloud-sub' })
  await sub.subscribeAsync({ 'fleet/#': { qos: 1 }, 'alarms/#': { qos: 1 } })
  const got = collect(sub)
  const dev = await device(t, g, 'sensor-1')
  await dev.publishAsync('site/1/dev/d1/telemetry', '{"t":21.5}', { qos: 1 })
  await dev.publishAsync('site/1/alarm/fire/zone-2', 'hot', { qos: 1 })
  await dev.publishAsync('site/1/other', 'not mapped', { qos: 1 })
  await waitFor(() => got.length >= 2, 'two bridged messages')
  const tele = got.find((m) => m.topic.startsWith('fleet/'))!
  t.equal(tele.topic, 'fleet/default/gw-test/site/1/dev/d1/telemetry', '${fleet}, ${gateway.id}, ${topic}')
  t.equal(tele.payload.toString(), '{"t":21.5}')
  t.equal(tele.qos, 1, 'sent to the cloud with QoS 1')
  const alarm = got.find((m) => m.topic.startsWith('alarms/'))!
  t.equal(alarm.topic, 'alarms/gw-test/alarm/fire/zone-2', '${topic:2} drops two levels')
  t.equal(alarm.qos, 0, 'mapping QoS 0')
  await waitFor(() => bridge.outbox.depth === 0, 'outbox empty once acknowledged')
  t.notOk(got.some((m) => m.topic.includes('other')), 'unmapped topics stay local')
  const metrics = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  t.match(metrics, /edgewarden_upstream_up 1/)
  t.match(metrics, /edgewarden_upstream_sent_total 2/)
  t.match(metrics, /edgewarden_outbox_messages 0/)
  const health = await (await fetch(`http://127.0.0.1:${g.port('admin')}/healthz`)).json() as { upstream: { state: string; outbox: { messages: number } } }
  t.equal(health.upstream.state, 'up')
  t.equal(health.upstream.outbox.messages, 0)
})

t.test('in: cloud commands reach local subscribers, pass policy as `upstream`, never echo back out', async (t) => {
  const cloud = await startMosquitto(t)
  const policies = join(tempDir(t), 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'p.yaml'), [
    'rules:',
    '  - { id: open, effect: allow, actions: [publish, subscribe], topics: ["#"] }',
    '  - { id: cloud-no-firmware, effect: deny, actions: [publish], topics: ["site/+/dev/+/firmware"], who: { groups: [cloud] } }',
    '  - { id: status-readers, effect: allow, actions: [subscribe], topics: ["$warden/status"] }',
    '  - { id: ota-needs-approval, effect: allow, actions: [publish], topics: ["site/+/dev/+/ota"], approval: { approvers: { groups: [ops] }, quorum: 1, ttl: 15m } }',
  ].join('\n') + '\n')
  const g = await startGateway(t, {
    policies: { dir: policies, watch: false },
    upstream: {
      url: cloud.url,
      reconnect: { minMs: 50, maxMs: 200 },
      out: [{ local: 'site/#', remote: 'echo/${topic}', qos: 1 }],
      in: [{ remote: 'fleet/acme/gw-test/cmd/#', local: '${topic:4}', qos: 1 }],
    },
  })
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  const status = await device(t, g, 'ops')
  await status.subscribeAsync('$warden/status', { qos: 0 })
  const st = JSON.parse((await nextMessage(status)).payload.toString()) as { upstream?: { state: string } }
  t.equal(st.upstream?.state, 'up', '$warden/status carries the upstream state')

  const local = await device(t, g, 'actuator-1')
  await local.subscribeAsync('site/#', { qos: 1 })
  const localGot = collect(local)
  const cloudSub = await connect(t, cloud.url, { clientId: 'cloud-sub' })
  await cloudSub.subscribeAsync('echo/#', { qos: 1 })
  const cloudGot = collect(cloudSub)
  const ops = await connect(t, cloud.url, { clientId: 'cloud-ops' })
  await ops.publishAsync('fleet/acme/gw-test/cmd/site/1/dev/d1/cmd', 'reboot', { qos: 1 })
  await ops.publishAsync('fleet/acme/gw-test/cmd/site/1/dev/d1/firmware', 'evil.bin', { qos: 1 })
  await ops.publishAsync('fleet/acme/gw-test/cmd/site/1/dev/d1/ota', 'fw-2.bin', { qos: 1 })
  await waitFor(() => localGot.some((m) => m.topic === 'site/1/dev/d1/cmd'), 'command delivered locally')
  t.equal(localGot.find((m) => m.topic === 'site/1/dev/d1/cmd')!.payload.toString(), 'reboot')
  await waitFor(() => g.journal.entries.some((e) => e.type === 'publish_denied' && e.sub === 'upstream'), 'denied command journaled')
  const denied = g.journal.entries.find((e) => e.type === 'publish_denied' && e.sub === 'upstream')!
  t.equal(denied.topic, 'site/1/dev/d1/firmware')
  t.equal(denied.rule, 'cloud-no-firmware')
  t.equal(denied.kind, 'service')
  const allowed = g.journal.entries.find((e) => e.type === 'publish' && e.sub === 'upstream')!
  t.equal(allowed.topic, 'site/1/dev/d1/cmd', 'inbound publish journaled with sub upstream')
  t.notOk(localGot.some((m) => m.topic.endsWith('firmware')), 'the cloud cannot write where policy denies')
  await waitFor(() => g.journal.entries.some((e) => e.type === 'publish_denied' && e.topic === 'site/1/dev/d1/ota'), 'held command refused')
  const held = g.journal.entries.find((e) => e.type === 'publish_denied' && e.topic === 'site/1/dev/d1/ota')!
  t.match(held, { reason: 'approval_required', rule: 'ota-needs-approval', upstreamTopic: 'fleet/acme/gw-test/cmd/site/1/dev/d1/ota' }, 'a rule that would hold a cloud message denies it: nobody on the cloud side can be asked')
  t.notOk(localGot.some((m) => m.topic.endsWith('ota')))

  // a local marker after the command: once it is bridged, an echo would have been bridged before it
  await local.publishAsync('site/marker', 'm', { qos: 1 })
  await waitFor(() => cloudGot.some((m) => m.topic === 'echo/site/marker'), 'marker bridged')
  t.same(cloudGot.map((m) => m.topic), ['echo/site/marker'], 'the inbound command was not bridged back out')
})

t.test('ws upstream: another edgewarden as the cloud, the gateway authenticating with a token as its password', async (t) => {
  const cloudGw = await startGateway(t)
  const token = await cloudGw.token({ sub: 'gw-edge' })
  const sub = await device(t, cloudGw, 'cloud-reader')
  await sub.subscribeAsync('up/#', { qos: 1 })
  const got = collect(sub)
  const g = await startGateway(t, {
    upstream: { url: cloudGw.url('ws'), clientId: 'gw-edge', username: 'gw-edge', password: token, reconnect: { minMs: 50, maxMs: 200 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }] },
  })
  await waitFor(() => g.gw.bridge!.link.connected, 'link up over WebSocket')
  const dev = await device(t, g, 'sensor-1')
  await dev.publishAsync('site/1/temp', '21', { qos: 1 })
  await waitFor(() => got.length === 1, 'bridged over ws')
  t.equal(got[0]!.topic, 'up/site/1/temp')
  t.ok(cloudGw.journal.entries.some((e) => e.type === 'connect' && e.sub === 'gw-edge'), 'the cloud saw the gateway connect as gw-edge')
})
