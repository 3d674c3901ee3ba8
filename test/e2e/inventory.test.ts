import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import type { MqttClient } from 'mqtt'
import { createGateway, type Gateway } from '../../src/index.js'
import { mintToken } from '../../src/identity/mint.js'
import { silentLogger } from '../../src/logger.js'
import { compilePolicy, lintPolicyFiles, readPolicyDir } from '../../src/policy/index.js'
import { runPolicyTests } from '../../src/policy/runner.js'
import { tempDir } from '../helpers/gateway.js'
import { connect, nextMessage } from '../helpers/mqtt.js'
import { SITE_POLICY } from '../inventory/site.js'

const bin = fileURLToPath(new URL('../../bin/edgewarden.js', import.meta.url))
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, EDGEWARDEN_FROM_SOURCE: '1' }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

async function gateway(t: Test, dataDir: string, policies: string, mode: 'monitor' | 'enforce'): Promise<Gateway> {
  const gw = await createGateway({
    env: {}, cwd: dataDir,
    overrides: {
      gateway: { id: 'gw-inv', dataDir },
      listeners: [{ type: 'mqtt', host: '127.0.0.1', port: 0 }],
      admin: { host: '127.0.0.1', port: 0 },
      broker: { persistence: 'memory' },
      log: { level: 'silent' },
      limits: { connectRatePerAddress: '100000/s' },
      policies: { dir: policies, watch: false, mode },
      auth: { jwt: { clientIdBinding: 'none' } },
      inventory: { flushMs: 50 },
    },
  }, { logger: silentLogger })
  await gw.start()
  t.teardown(() => gw.stop())
  return gw
}

t.test('monitor → policy diff and policy suggest → enforce: legitimate traffic passes, the rogue script is refused; inventory survives the restart', async (t) => {
  const dataDir = tempDir(t)
  const site = join(dataDir, 'site-policy')
  mkdirSync(site)
  writeFileSync(join(site, 'site.yaml'), SITE_POLICY)

  // 1. monitor mode: 5 devices, a service, and a script borrowing dev-02's token
  const a = await gateway(t, dataDir, site, 'monitor')
  const url = () => `mqtt://127.0.0.1:${a.address('mqtt')!.port}`
  const devIds = ['dev-01', 'dev-02', 'dev-03', 'dev-04', 'dev-05']
  const tok = (sub: string, kind: string, groups: string[] = []) => mintToken(a.devKey!.privateJwk, { sub, kind: kind as 'device', groups, ttlSec: 600 })
  const tokens = new Map<string, string>()
  for (const id of devIds) tokens.set(id, await tok(id, 'device', ['sensors']))
  tokens.set('svc-ops', await tok('svc-ops', 'service', ['ops']))
  const connectAll = async (u: string) => {
    const devs: MqttClient[] = []
    for (const id of devIds) devs.push(await connect(t, u, { clientId: id, password: tokens.get(id)! }))
    const svc = await connect(t, u, { clientId: 'svc-ops', password: tokens.get('svc-ops')! })
    const rogue = await connect(t, u, { clientId: 'rogue-script', password: tokens.get('dev-02')! })
    return { devs, svc, rogue }
  }
  {
    const { devs, svc, rogue } = await connectAll(url())
    await Promise.all(devs.map((d, i) => d.subscribeAsync(`site/1/dev/${devIds[i]}/cmd/#`, { qos: 1 })))
    await svc.subscribeAsync('site/1/dev/+/telemetry', { qos: 1 })
    for (let r = 0; r < 3; r++) await Promise.all(devs.map((d, i) => d.publishAsync(`site/1/dev/${devIds[i]}/telemetry`, `{"r":${r}}`, { qos: 1 })))
    await svc.publishAsync('site/1/dev/dev-03/cmd/setpoint', '{"v":1}', { qos: 1 })
    await rogue.subscribeAsync('site/1/dev/+/cmd/#', { qos: 1 })
    await rogue.publishAsync('site/1/dev/dev-04/cmd/reboot', '{}', { qos: 1 })
    await new Promise((r) => setTimeout(r, 150))
    for (const c of [...devs, svc, rogue]) await c.endAsync()
  }
  await a.stop()

  // 2. policy diff and policy suggest from the data dir (CLI processes)
  const suggested = join(dataDir, 'suggested')
  mkdirSync(join(suggested, 'tests'), { recursive: true })
  const [diff, suggest] = await Promise.all([
    cli('policy', 'diff', '--since', '1h', '--data-dir', dataDir, '--dir', site, '--json'),
    cli('policy', 'suggest', '--since', '7d', '--data-dir', dataDir, '--tests', join(suggested, 'tests', 'suggested.yaml')),
  ])
  t.equal(diff.code, 0, diff.stderr)
  const d = JSON.parse(diff.stdout) as { total: number; stillBlocked: number; groups: { sub: string; clientIds: string[]; items: { action: string; filter: string; count: number }[] }[] }
  t.equal(d.total, 2)
  t.equal(d.stillBlocked, 2)
  t.same(d.groups.map((g) => [g.sub, g.clientIds, g.items.map((i) => `${i.action} ${i.filter} ${i.count}`).sort()]), [
    ['dev-02', ['rogue-script'], ['publish site/1/dev/dev-04/cmd/reboot 1', 'subscribe site/1/dev/+/cmd/# 1']],
  ], 'grouped by identity and topic filter')
  t.equal(suggest.code, 0, suggest.stderr)
  t.match(suggest.stdout, "site/1/dev/${client_id}/telemetry")
  t.match(suggest.stdout, /left out .*rogue-script.*site\/1\/dev\/dev-04\/cmd\/reboot/)
  writeFileSync(join(suggested, 'suggested.yaml'), suggest.stdout)
  const lint = lintPolicyFiles(readPolicyDir(suggested)!)
  t.same(lint.issues.filter((i) => i.severity === 'error'), [], 'the suggestion lints clean')
  t.ok(lint.doc, 'the suggestion compiles')
  const run = runPolicyTests(compilePolicy(lint.doc!), readPolicyDir(join(suggested, 'tests'))!)
  t.same(run.issues, [], 'the generated test file is valid')
  t.equal(run.failed, 0, 'policy test passes')
  const results = run.results.map((r) => `${r.name}: ${r.expected}`)
  t.ok(results.includes('dev-01 (dev-01) publish site/1/dev/dev-01/telemetry: allow'), 'observed device telemetry: allow')
  t.ok(results.includes('rogue-script (dev-02) publish site/1/dev/dev-04/cmd/reboot: deny'), "the rogue script's command: deny")

  // 3. restart in enforce mode with the suggested policy, same data dir
  const b = await gateway(t, dataDir, suggested, 'enforce')
  const ub = `mqtt://127.0.0.1:${b.address('mqtt')!.port}`
  const { devs, svc, rogue } = await connectAll(ub)
  const granted = await Promise.all(devs.map((dv, i) => dv.subscribeAsync(`site/1/dev/${devIds[i]}/cmd/#`, { qos: 1 })))
  t.same(granted.map((g) => g[0]!.qos), [1, 1, 1, 1, 1], 'devices may subscribe to their own commands')
  t.equal((await svc.subscribeAsync('site/1/dev/+/telemetry', { qos: 1 }))[0]!.qos, 1, 'the service reads telemetry')
  const got = nextMessage(svc)
  await devs[0]!.publishAsync('site/1/dev/dev-01/telemetry', '{"r":9}', { qos: 1 })
  t.equal((await got).topic, 'site/1/dev/dev-01/telemetry', 'device telemetry flows')
  const cmd = nextMessage(devs[2]!)
  await svc.publishAsync('site/1/dev/dev-03/cmd/setpoint', '{"v":2}', { qos: 1 })
  t.equal((await cmd).topic, 'site/1/dev/dev-03/cmd/setpoint', 'the service commands a device')
  const refused = await rogue.subscribeAsync('site/1/dev/+/cmd/#', { qos: 1 }).then((g) => g.map((x) => x.qos), (err: { packet?: { granted?: number[] } }) => err.packet?.granted)
  t.same(refused, [128], "the rogue script's subscription is refused")
  const quiet = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(true), 500)
    devs[3]!.once('message', () => { clearTimeout(timer); resolve(false) })
  })
  await rogue.publishAsync('site/1/dev/dev-04/cmd/reboot', '{}', { qos: 1 })
  t.ok(await quiet, "the rogue script's command is refused (acknowledged, dropped: the device gets nothing)")

  // 4. the inventory survived the restart and keeps counting; `edgewarden inventory --json` reads it while the gateway runs
  await new Promise((r) => setTimeout(r, 200))
  const inv = await cli('inventory', '--json', '--data-dir', dataDir)
  t.equal(inv.code, 0, inv.stderr)
  const entries = (JSON.parse(inv.stdout) as { entries: { type: string; id: string; connects: number; published: { filter: string; count: number }[]; decisions: Record<string, number> }[] }).entries
  const dev01 = entries.find((e) => e.type === 'identity' && e.id === 'dev-01')!
  t.same(dev01.published, [{ filter: 'site/1/dev/dev-01/telemetry', count: 4, bytes: 4 * 7 }], 'counts from before and after the restart')
  t.equal(dev01.connects, 2)
  const rogueEntry = entries.find((e) => e.type === 'client' && e.id === 'rogue-script')!
  t.equal(rogueEntry.decisions.would_deny, 2, 'monitor-mode would-denies kept')
  t.equal(rogueEntry.decisions.deny, 2, 'enforced denies counted after the restart')
})
