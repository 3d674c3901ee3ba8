import t from 'tap'
import type { MqttClient } from 'mqtt'
import { startGateway } from '../helpers/gateway.js'
import { sitePolicyDir } from '../inventory/site.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor } from '../helpers/wait.js'
import type { JournalEntry } from '../../src/journal/types.js'

const pub = (c: MqttClient, topic: string, payload: string, qos: 0 | 1 = 1) => c.publishAsync(topic, payload, { qos })

t.test('site simulation in monitor mode: nothing blocked, every would-deny journaled, inventory and flags', async (t) => {
  const g = await startGateway(t, {
    policies: { dir: sitePolicyDir(t), watch: false, mode: 'monitor' },
    auth: { jwt: { clientIdBinding: 'none' } },
    inventory: { flushMs: 50 },
  })
  const url = g.url()
  const devIds = Array.from({ length: 20 }, (_, i) => `dev-${String(i + 1).padStart(2, '0')}`)
  const devTokens = new Map<string, string>()
  const devices: MqttClient[] = []
  for (const id of devIds) {
    devTokens.set(id, await g.token({ sub: id, kind: 'device', groups: ['sensors'] }))
    devices.push(await connect(t, url, { clientId: id, password: devTokens.get(id)! }))
  }
  const services = await Promise.all(['svc-dashboard', 'svc-scheduler'].map(async (id) => connect(t, url, { clientId: id, password: await g.token({ sub: id, kind: 'service', groups: ['ops'] }) })))
  const agent = await connect(t, url, { clientId: 'agent-llm', password: await g.token({ sub: 'agent-llm', kind: 'agent' }) })
  // the rogue script borrows dev-05's token from another clientId
  const rogue = await connect(t, url, { clientId: 'rogue-script', password: devTokens.get('dev-05')! })

  await Promise.all(devices.map((d, i) => d.subscribeAsync(`site/1/dev/${devIds[i]}/cmd/#`, { qos: 1 })))
  for (const s of services) await s.subscribeAsync('site/1/dev/+/telemetry', { qos: 1 })
  await agent.subscribeAsync('site/1/dev/+/telemetry', { qos: 0 })
  // would be refused: a device subscribing to every device's commands
  const rogueSub = await rogue.subscribeAsync('site/1/dev/+/cmd/#', { qos: 1 })
  t.equal(rogueSub[0]!.qos, 1, 'monitor mode: the rogue subscription is granted')

  const svcGot: string[] = []
  services[0]!.on('message', (topic) => svcGot.push(topic))
  const rogueGot: string[] = []
  rogue.on('message', (topic) => rogueGot.push(topic))
  const dev07Got: string[] = []
  devices[6]!.on('message', (topic, p) => dev07Got.push(`${topic} ${p.toString()}`))

  for (let round = 0; round < 3; round++) {
    await Promise.all(devices.map((d, i) => pub(d, `site/1/dev/${devIds[i]}/telemetry`, JSON.stringify({ t: 20 + i, round }))))
  }
  // dev-03 also sends one line of plain text on its telemetry topic
  await pub(devices[2]!, 'site/1/dev/dev-03/telemetry', 'boot ok')
  await pub(services[1]!, 'site/1/dev/dev-07/cmd/setpoint', JSON.stringify({ value: 21 }))
  // would be refused: no rule lets an agent command a device; its payload has a prompt/completion shape
  await pub(agent, 'site/1/dev/dev-03/cmd/setpoint', JSON.stringify({ role: 'assistant', content: 'set the setpoint to 23', tool_calls: [] }))
  // would be refused: a device publishing another device's command, and a secret in a payload (monitor-mode rule)
  await pub(rogue, 'site/1/dev/dev-07/cmd/reboot', '{"now":true}')
  await pub(devices[9]!, 'site/1/dev/dev-10/telemetry', 'api_key=abcd1234efgh5678')

  await waitFor(() => svcGot.length >= 62 && dev07Got.length >= 2 && rogueGot.length >= 2, 5000)
  t.ok(dev07Got.some((m) => m.startsWith('site/1/dev/dev-07/cmd/reboot')), 'the rogue command reached the device (nothing blocked)')
  t.ok(rogueGot.includes('site/1/dev/dev-07/cmd/setpoint'), 'the rogue subscription receives commands (nothing blocked)')
  t.ok(svcGot.includes('site/1/dev/dev-10/telemetry'), 'the publish with a secret was delivered')
  for (const c of [...devices, ...services, agent, rogue]) t.ok(c.connected, `${c.options.clientId} still connected`)

  const entries = g.journal.entries
  t.same(entries.filter((e) => /_denied$/.test(e.type)).map((e) => e.type), [], 'no denial records in monitor mode')
  const would = entries.filter((e) => e.type.startsWith('would_'))
  const brief = (e: JournalEntry) => `${e.type} ${e.action} ${e.clientId} ${e.topic} ${e.rule ?? '-'} ${e.reason}`
  t.same(would.map(brief).sort(), [
    'would_deny publish agent-llm site/1/dev/dev-03/cmd/setpoint - no_matching_rule',
    'would_deny publish dev-10 site/1/dev/dev-10/telemetry no-raw-secrets payload_detector:secret',
    'would_deny publish rogue-script site/1/dev/dev-07/cmd/reboot - no_matching_rule',
    'would_deny subscribe rogue-script site/1/dev/+/cmd/# - no_matching_rule',
  ].sort(), 'exactly the refusals enforcing would have made')
  t.ok(would.every((e) => e.policyRev && e.sub && Array.isArray(e.groups)), 'would_* records carry identity and policy revision')

  // inventory through the admin API (admins only)
  const admin = await g.token({ sub: 'root', groups: ['admins'], kind: 'human' })
  const get = async (path: string, token = admin) => {
    const res = await fetch(`http://127.0.0.1:${g.port('admin')}${path}`, { headers: { authorization: `Bearer ${token}` } })
    return { status: res.status, body: await res.json() as { entries: Array<Record<string, any>> } }
  }
  t.equal((await get('/api/inventory', devTokens.get('dev-01'))).status, 403, 'a device is not an admin')
  let inv: Array<Record<string, any>> = []
  for (let i = 0; i < 100; i++) {
    inv = (await get('/api/inventory')).body.entries
    const d10 = inv.find((e) => e.type === 'identity' && e.id === 'dev-10')
    if (d10?.published.reduce((n: number, p: { count: number }) => n + p.count, 0) === 4 && inv.find((e) => e.id === 'agent-llm')?.flags.length === 2) break
    await new Promise((r) => setTimeout(r, 50))
  }
  const identities = inv.filter((e) => e.type === 'identity').map((e) => e.id).sort()
  t.same(identities, [...devIds, 'agent-llm', 'svc-dashboard', 'svc-scheduler'].sort(), 'every identity is listed (the admin API caller is not an MQTT client)')
  const clients = inv.filter((e) => e.type === 'client').map((e) => e.id).sort()
  t.same(clients, [...devIds, 'agent-llm', 'rogue-script', 'svc-dashboard', 'svc-scheduler'].sort(), 'every clientId is listed')
  const ide = (id: string) => inv.find((e) => e.type === 'identity' && e.id === id)!
  const cli = (id: string) => inv.find((e) => e.type === 'client' && e.id === id)!
  const dev01 = ide('dev-01')
  t.same(dev01.published.map((p: any) => [p.filter, p.count]), [['site/1/dev/dev-01/telemetry', 3]])
  t.same(dev01.subscribed.map((p: any) => p.filter), ['site/1/dev/dev-01/cmd/#'])
  t.equal(dev01.kind, 'device')
  t.same(dev01.groups, ['sensors'])
  t.same(dev01.formats, { json: 3, msgpack: 0, text: 0, binary: 0 })
  t.equal(dev01.decisions.allow, 4, '3 publishes + 1 subscribe allowed')
  t.same(ide('dev-03').formats, { json: 3, msgpack: 0, text: 1, binary: 0 })
  t.same(ide('dev-05').related.sort(), ['dev-05', 'rogue-script'], 'dev-05 used from two clientIds')
  t.same(cli('rogue-script').published.map((p: any) => p.filter), ['site/1/dev/dev-07/cmd/reboot'])
  t.same(cli('rogue-script').subscribed.map((p: any) => p.filter), ['site/1/dev/+/cmd/#'])
  t.equal(cli('rogue-script').decisions.would_deny, 2)
  t.same(ide('svc-dashboard').subscribed.map((p: any) => p.filter), ['site/1/dev/+/telemetry'])
  t.same(ide('svc-scheduler').published.map((p: any) => p.filter), ['site/1/dev/dev-07/cmd/setpoint'])
  t.equal(ide('agent-llm').kind, 'agent')
  t.ok(dev01.remotes.includes('127.0.0.1') || dev01.remotes.some((r: string) => r.endsWith('127.0.0.1')), 'remote address kept')
  t.ok(dev01.listeners.length === 1, 'listener kept')

  // shadow flags
  const flagsOf = (e: Record<string, any>) => e.flags.map((f: any) => f.flag).sort()
  t.same(flagsOf(ide('dev-05')), ['foreign_commands', 'many_client_ids', 'new_identity'], 'the borrowed token is flagged')
  t.same(flagsOf(ide('agent-llm')), ['agent_traffic', 'new_identity'], 'the agent is flagged for agent traffic')
  t.same(flagsOf(ide('dev-01')), ['new_identity'])
  const flagRecords = entries.filter((e) => e.type === 'flag')
  t.ok(flagRecords.some((e) => e.flag === 'foreign_commands' && e.sub === 'dev-05' && e.clientId === 'rogue-script'), 'flag journaled')
  const metrics = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  t.match(metrics, /edgewarden_inventory_flags_total\{flag="foreign_commands"\} 1/)
  t.match(metrics, /edgewarden_inventory_flags_open\{flag="agent_traffic"\} 1/)

  // acknowledge a flag
  const ack = await fetch(`http://127.0.0.1:${g.port('admin')}/api/inventory/identity/dev-05/flags/foreign_commands/ack`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } })
  t.equal(ack.status, 200)
  const again = await fetch(`http://127.0.0.1:${g.port('admin')}/api/inventory/identity/dev-05/flags/foreign_commands/ack`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } })
  t.equal(again.status, 404, 'already acknowledged')
  const flagged = (await get('/api/inventory?flagged=1')).body.entries
  const d5 = flagged.find((e) => e.type === 'identity' && e.id === 'dev-05')!
  t.same(d5.flags.find((f: any) => f.flag === 'foreign_commands').acked.by, 'root')
  t.ok(entries.some((e) => e.type === 'flag' && e.acknowledged === true && e.by === 'root'), 'acknowledgement journaled')
})
