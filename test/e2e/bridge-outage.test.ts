import t, { type Test } from 'tap'
import { startMosquitto } from '../helpers/mosquitto.js'
import { startGateway, tempDir } from '../helpers/gateway.js'
import { connect } from '../helpers/mqtt.js'
import { waitFor, cloudSubscriber, publishSeq } from '../bridge/util.js'
import { ManualClock } from '../../src/clock.js'

// the figure is 50,000; CI runs fewer to stay fast (EW_BRIDGE_OUTAGE_N=50000 for the full run)
const N = Number(process.env.EW_BRIDGE_OUTAGE_N ?? 10_000)

t.test(`${N} QoS 1 messages during a cloud outage survive a gateway restart and arrive in order`, async (t) => {
  const cloud = await startMosquitto(t, { persistence: true })
  const dataDir = tempDir(t)
  const overrides = {
    gateway: { id: 'gw-test', dataDir },
    upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 250 }, out: [{ local: 'site/+/telemetry', remote: 'up/${topic}', qos: 1 }] },
  }
  // a persistent cloud subscriber: mosquitto queues for it while it reconnects
  const got = await cloudSubscriber(t, cloud.url, 'up/#')

  const g1 = await startGateway(t, overrides)
  await waitFor(() => g1.gw.bridge!.link.connected, 'link up')
  await cloud.stop()
  await waitFor(() => !g1.gw.bridge!.link.connected, 'link down')

  const dev = await connect(t, g1.url(), { clientId: 'sensor-1', password: await g1.token({ sub: 'sensor-1' }) })
  const t0 = performance.now()
  await publishSeq(dev, (i) => `site/${i % 7}/telemetry`, N)
  const publishSec = (performance.now() - t0) / 1000
  t.equal(g1.gw.bridge!.outbox.depth, N, 'every PUBACKed message is in the outbox')
  const metrics = await (await fetch(`http://127.0.0.1:${g1.port('admin')}/metrics`)).text()
  t.match(metrics, new RegExp(`edgewarden_outbox_messages ${N}\\b`), 'queue depth in metrics')
  t.match(metrics, /edgewarden_outbox_oldest_age_seconds \d/, 'oldest age in metrics')
  t.match(metrics, /edgewarden_upstream_up 0/)
  dev.end(true)

  // restart while the cloud is still down
  await g1.gw.stop()
  const g2 = await startGateway(t, overrides)
  const bridge = g2.gw.bridge!
  t.equal(bridge.outbox.depth, N, 'the queue survived the restart')
  t.equal(bridge.link.connected, false)

  await cloud.start()
  const t1 = performance.now()
  await waitFor(() => bridge.outbox.depth === 0, 'outbox drained', 60_000)
  const drainSec = (performance.now() - t1) / 1000
  await waitFor(() => got.length >= N, `cloud subscriber got ${N}`, 60_000).catch((err: Error) => { throw new Error(`${err.message} (got ${got.length})`) })
  t.equal(got.length, N, 'no duplicates: nothing was in flight when the link dropped')
  let ordered = true
  for (let i = 0; i < N; i++) {
    const m = got[i]!
    if (m.payload.toString() !== String(i) || m.topic !== `up/site/${i % 7}/telemetry`) {
      ordered = false
      t.fail(`message ${i}: ${m.topic} ${m.payload.toString()}`)
      break
    }
  }
  t.ok(ordered, 'all arrived in the order they were queued')
  t.ok(g2.journal.entries.some((e) => e.type === 'upstream_up'), 'upstream_up journaled after the outage')
  t.ok(g1.journal.entries.some((e) => e.type === 'upstream_down'), 'upstream_down journaled when the cloud went away')
  t.comment(`local publish into the outbox: ${Math.round(N / publishSec)} msg/s; drain after the outage: ${Math.round(N / drainSec)} msg/s`)
})

/** a real Mosquitto as the cloud, a persistent subscriber to up/#, and a gateway bridging site/# there, link up */
async function bridged(t: Test, upstream: Record<string, unknown> = {}, opts: { clock?: ManualClock } = {}) {
  const cloud = await startMosquitto(t, { persistence: true })
  const got = await cloudSubscriber(t, cloud.url, 'up/#')
  const g = await startGateway(t, { upstream: { url: cloud.url, reconnect: { minMs: 50, maxMs: 250 }, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }], ...upstream } }, opts)
  const bridge = g.gw.bridge!
  await waitFor(() => bridge.link.connected, 'link up')
  return { cloud, got, g, bridge }
}

t.test('the link drops in the middle of a drain: every message arrives, duplicates only as QoS 1 allows, and counted', async (t) => {
  const n = Math.round(N / 2)
  const { cloud, got, g, bridge } = await bridged(t)
  await cloud.stop()
  await waitFor(() => !bridge.link.connected, 'link down')
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  await publishSeq(dev, () => 'site/a', n)
  await cloud.start()
  await waitFor(() => bridge.outbox.depth < n * 0.8, 'drain under way', 30_000)
  await cloud.stop()
  await cloud.start()
  await waitFor(() => bridge.outbox.depth === 0, 'outbox drained', 60_000)
  const seen = new Set<string>()
  await waitFor(() => {
    for (const m of got) seen.add(m.payload.toString())
    return seen.size >= n
  }, 'every message at least once', 60_000)
  t.equal(seen.size, n, 'none lost')
  // first arrivals are in queue order
  let last = -1
  let inOrder = true
  const first = new Set<string>()
  for (const m of got) {
    const p = m.payload.toString()
    if (first.has(p)) continue
    first.add(p)
    if (Number(p) !== last + 1) inOrder = false
    last = Number(p)
  }
  t.ok(inOrder, 'first arrivals in order')
  // mosquitto's own redeliveries to the subscriber (dup flag) are not the bridge's doing
  const duplicates = got.filter((m) => !m.dup).length - n
  const metrics = await (await fetch(`http://127.0.0.1:${g.port('admin')}/metrics`)).text()
  const resent = Number(/edgewarden_upstream_resent_total (\d+)/.exec(metrics)?.[1])
  t.ok(duplicates <= resent, `duplicates (${duplicates}) ≤ messages resent after the drop (${resent})`)
  t.comment(`copies received ${got.length} for ${n} messages (${got.filter((m) => m.dup).length} redelivered by mosquitto with the dup flag); resent by the bridge ${resent}`)
})

t.test('the cloud goes away while messages are held in memory for its PUBACK: they are written, acknowledged, and all arrive in order', async (t) => {
  const n = Math.round(N / 2)
  const { cloud, got, g, bridge } = await bridged(t)
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  let acked = 0
  const burst = publishSeq(dev, () => 'site/a', n, 2000)
  dev.on('packetreceive', (p) => { if (p.cmd === 'puback') acked++ })
  await waitFor(() => acked > n / 10, 'a tenth acknowledged (via the cloud)', 30_000)
  t.equal(bridge.outbox.written, 0, 'so far nothing written')
  await cloud.stop()
  await burst
  t.ok(bridge.outbox.written > 0, `the ones held in memory when the link dropped, and the rest, were written (${bridge.outbox.written})`)
  await cloud.start()
  await waitFor(() => bridge.outbox.depth === 0, 'outbox drained', 60_000)
  const firsts: number[] = []
  const seen = new Set<string>()
  await waitFor(() => {
    for (const m of got) {
      const p = m.payload.toString()
      if (!seen.has(p)) { seen.add(p); firsts.push(Number(p)) }
    }
    got.length = 0
    return seen.size >= n
  }, 'every message at least once', 60_000)
  t.same(firsts, Array.from({ length: n }, (_, i) => i), 'none lost, first arrivals in order')
})

t.test('a cloud slow to acknowledge: messages written after storeAfterMs, then written first for 1 s, 2 s… (manual clock, a stalled Mosquitto)', async (t) => {
  const clock = new ManualClock(Date.now())
  const { cloud, got, g, bridge } = await bridged(t, { keepaliveSec: 60, buffer: { storeAfterMs: 100 } }, { clock })
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  process.kill(cloud.pid!, 'SIGSTOP')
  t.teardown(() => { try { process.kill(cloud.pid!, 'SIGCONT') } catch { /* gone */ } })
  let acked = 0
  const send = (p: string): Promise<unknown> => dev.publishAsync('site/a', p, { qos: 1 }).then(() => acked++)
  // the sweep looks every 25 ms (real time) at the clock, and takes a jump of more than 75 ms
  // between two looks for its own event loop having been busy: the clock moves in small steps
  const ticks = (): Promise<void> => new Promise((r) => setTimeout(r, 120))
  const age = async (ms: number): Promise<void> => {
    for (let done = 0; done < ms; done += 20) {
      clock.advance(20)
      await new Promise((r) => setTimeout(r, 30))
    }
  }

  const drained = (): Promise<void> => waitFor(() => bridge.outbox.depth === 0, 'the cloud caught up', 30_000)

  const a = send('a')
  await waitFor(() => bridge.outbox.depth === 1, 'a queued')
  await ticks()
  t.equal(bridge.outbox.written, 0, 'a waits in memory for the cloud')
  t.equal(acked, 0, 'and so does its PUBACK')
  await age(160)
  await a
  t.equal(bridge.outbox.written, 1, 'unacknowledged 100 ms after it was sent: written, then acknowledged')
  process.kill(cloud.pid!, 'SIGCONT')
  await drained()

  await send('b')
  t.equal(bridge.outbox.written, 2, 'within the next second: written first, though the cloud is back')
  await drained()
  process.kill(cloud.pid!, 'SIGSTOP')
  await age(1100)
  const c = send('c')
  await ticks()
  t.equal(bridge.outbox.written, 2, 'the second over: c sent first again')
  await age(160)
  await c
  t.equal(bridge.outbox.written, 3, 'slow again right away: written')
  process.kill(cloud.pid!, 'SIGCONT')
  await drained()
  await age(1100)
  await send('d')
  t.equal(bridge.outbox.written, 4, 'so this time two seconds of writing first')
  await drained()
  await age(1000)
  await send('e')
  t.equal(bridge.outbox.written, 4, 'after them, sent first again, and the cloud acknowledged it in time')
  await drained()
  t.same([...new Set(got.map((m) => m.payload.toString()))], ['a', 'b', 'c', 'd', 'e'], 'in order')
})

t.test('a stalled cloud (connected, acknowledging nothing) with more waiting than the window: every publish gets its PUBACK, also after the first second', async (t) => {
  const { cloud, got, g, bridge } = await bridged(t, { keepaliveSec: 60, buffer: { storeAfterMs: 100 } })
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  process.kill(cloud.pid!, 'SIGSTOP')
  t.teardown(() => { try { process.kill(cloud.pid!, 'SIGCONT') } catch { /* gone */ } })
  // 600 > the 512 the bridge sends unacknowledged: some wait unsent behind the stalled window
  await publishSeq(dev, (i) => `site/${i}`, 600, 600)
  t.equal(bridge.outbox.depth, 600)
  t.equal(bridge.outbox.written, 600, 'all written, the unsent ones too')
  // past the first second of writing first: a message now still gets its PUBACK (a deadline, not a timing)
  await new Promise((r) => setTimeout(r, 1500))
  await dev.publishAsync('site/late', 'late', { qos: 1 })
  t.equal(bridge.link.connected, true, 'the link never dropped')
  t.equal(bridge.outbox.written, 601)
  process.kill(cloud.pid!, 'SIGCONT')
  await waitFor(() => bridge.outbox.depth === 0, 'outbox drained', 30_000)
  await waitFor(() => new Set(got.map((m) => m.topic)).size === 601, 'the cloud has all 601', 30_000)
})

t.test('the link drops while messages wait in memory for the cloud: written at once, and their PUBACKs go out', async (t) => {
  // the sweep would take a minute to call the cloud slow: only the link's drop writes them
  const { cloud, g, bridge } = await bridged(t, { keepaliveSec: 60, buffer: { storeAfterMs: 60000 } })
  const dev = await connect(t, g.url(), { clientId: 'sensor-1', password: await g.token({ sub: 'sensor-1' }) })
  process.kill(cloud.pid!, 'SIGSTOP')
  let acked = 0
  const all = publishSeq(dev, (i) => `site/${i}`, 600, 600).then(() => { acked = 600 })
  // Aedes reads a client's next batch once the last one is acknowledged: only the first batch gets in
  await waitFor(() => bridge.outbox.depth > 0, 'the first batch queued')
  await new Promise((r) => setTimeout(r, 300))
  const held = bridge.outbox.depth
  t.equal(acked, 0, `no PUBACK while they (${held}) wait for the stalled cloud`)
  t.equal(bridge.outbox.written, 0, 'nothing written')
  process.kill(cloud.pid!, 'SIGKILL')
  // without the link's drop writing them, the held ones would wait for the sweep's minute
  await all
  t.equal(bridge.outbox.written, 600, 'the drop wrote the held ones, the rest were written first')
  t.equal(bridge.outbox.depth, 600, 'and all wait for the cloud')
})
