/**
 * Load generator, in its own process: bench/run.ts sends it one scenario at a time over IPC
 * ({type:'run', id, ...}) and gets {type:'result', id, result} back. Raw MQTT over net
 * sockets (bench/lib/wire.ts): packets are prebuilt, incoming ones only framed, so one
 * generator process drives a broker well past what Mosquitto does on one core.
 */
import { connect as netConnect } from 'node:net'
import type { JWK } from 'jose'
import { CpuMeter, percentile, rssAnonBytes, rssBytes } from './lib/proc.js'
import { TokenMinter } from './lib/tokens.js'
import {
  closeClient, connectPacket, DISCONNECT, incomingPayload, openClient, publishIdOffset, publishPacket,
  PUBLISH, subscribe, type WireClient,
} from './lib/wire.js'

export interface Common {
  readonly port: number
  readonly brokerPid: number
  /** the gateway's dev key: every client then presents a fresh token of its own */
  readonly jwk?: JWK
}
export type Scenario =
  | (Common & { kind: 'connects'; count: number; warmup: number; concurrency: number; tag: string; durationMs?: number; pool?: number })
  | (Common & { kind: 'fanin'; qos: 0 | 1; publishers: number; warmupMs: number; measureMs: number; payloadBytes: number })
  | (Common & { kind: 'fanout'; subscribers: number; warmupMs: number; measureMs: number; payloadBytes: number })
  | (Common & { kind: 'latency'; rate: number; warmupMs: number; measureMs: number; payloadBytes: number })
  | (Common & { kind: 'idle'; count: number; concurrency: number })
  | (Common & { kind: 'slowsub'; publishers: number; rate: number; payloadBytes: number; stallMs: number; afterMs: number })

type In = ({ type: 'run'; id: number } & Scenario) | { type: 'release' }

export interface Throughput { rate: number; messages: number; seconds: number; brokerCpu: number; loadCpu: number; stalls: number; brokerUsPerOp: number; brokerMainUsPerOp: number; totalReceived: number }

const send = (m: object): void => { process.send?.(m) }

function loadCpu(): () => number {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  return () => {
    const c = process.cpuUsage(c0)
    return Math.round(((c.user + c.system) / 1000 / (performance.now() - t0)) * 100)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function client(s: Common, minter: TokenMinter | undefined, clientId: string): Promise<WireClient> {
  return openClient(s.port, { clientId, password: minter?.mint(clientId) })
}

/** JSON payload of a given size, so a JSON mask (when configured) has something to parse. */
function payloadOf(bytes: number, extra = ''): Buffer {
  const head = `{"t":21.5,"h":40${extra},"pad":"`
  const pad = Math.max(0, bytes - head.length - 2)
  return Buffer.from(`${head}${'x'.repeat(pad)}"}`)
}

// ---------------------------------------------------------------- connect → CONNACK → DISCONNECT

async function connects(s: Extract<Scenario, { kind: 'connects' }>): Promise<object> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const n = s.warmup + s.count
  // pool: devices reconnecting (clientId i % pool), each time with a fresh token; without it
  // every connect is a never-seen identity (first-seen costs: inventory entries, flags)
  const packetOf = (i: number): Buffer => {
    const clientId = `bench-${s.tag}-${s.pool ? i % s.pool : i}`
    return connectPacket({ clientId, password: minter?.mint(clientId) })
  }
  // pre-mint and pre-encode, so the timed part only moves bytes; a time-bounded storm
  // (its own process, not the one measuring) mints as it goes
  const lazy = s.durationMs !== undefined
  const packets: Buffer[] = lazy ? [] : Array.from({ length: n }, (_, i) => packetOf(i))
  let next = 0
  let done = 0
  let refused = 0
  let errors = 0
  let t0 = 0
  let cpu: () => number = () => 0
  const broker = new CpuMeter(s.brokerPid)
  const deadline = s.durationMs ? performance.now() + s.durationMs : Infinity
  if (s.warmup === 0) { t0 = performance.now(); cpu = loadCpu(); broker.start() }

  // where a connect's time goes, from this side (sums over the timed connects, ms):
  // TCP connect, CONNECT → CONNACK, DISCONNECT → close
  const phases = { tcp: 0, connack: 0, close: 0 }
  const once = (pkt: Buffer): Promise<void> => new Promise((resolve) => {
    const started = performance.now()
    let sent = 0
    let ended = 0
    const sock = netConnect({ port: s.port, host: '127.0.0.1', noDelay: true })
    let acked = false
    sock.once('connect', () => { sent = performance.now(); sock.write(pkt) })
    sock.on('data', (b: Buffer) => {
      if (acked) return
      acked = true
      if (b[0] !== 0x20 || b[3] !== 0) { refused++; sock.destroy(); return }
      ended = performance.now()
      sock.end(DISCONNECT)
    })
    sock.on('error', () => { errors++ })
    sock.once('close', () => {
      if (!acked) errors++
      if (t0 > 0 && ended > 0) {
        phases.tcp += sent - started
        phases.connack += ended - sent
        phases.close += performance.now() - ended
      }
      if (++done === s.warmup) { t0 = performance.now(); cpu = loadCpu(); broker.start() }
      resolve()
    })
  })
  const worker = async (): Promise<void> => {
    while (next < n && performance.now() < deadline) { const i = next++; await once(lazy ? packetOf(i) : packets[i]!) }
  }
  await Promise.all(Array.from({ length: s.concurrency }, worker))
  const seconds = (performance.now() - t0) / 1000
  const timed = done - s.warmup
  const brokerCpu = broker.stop()
  // broker CPU time per CONNECT (all its threads): less sensitive to a busy machine than the rate
  return { rate: timed / seconds, connections: timed, seconds, refused, errors, brokerCpu, loadCpu: cpu(), brokerUsPerOp: (brokerCpu / 100) * seconds * 1e6 / timed, brokerMainUsPerOp: (broker.main / 100) * seconds * 1e6 / timed, phasesMs: { tcp: phases.tcp / timed, connack: phases.connack / timed, close: phases.close / timed } }
}

// ---------------------------------------------------------------- throughput (fan-in, fan-out)

/**
 * Closed loop with a window: publishers write batches while fewer than `window` messages
 * are unreceived, so broker queues stay bounded and every broker sees the same offered load.
 * The rate is what the subscriber(s) receive during the measured window after a warm-up.
 */
async function throughput(
  s: Common & { warmupMs: number; measureMs: number },
  pubs: WireClient[], subs: WireClient[], batches: (p: number) => Buffer, perBatch: number, window: number, fanout: number,
): Promise<Throughput> {
  let sent = 0
  let received = 0
  let lastProgress = performance.now()
  let stalls = 0
  let pumping = false
  let running = true
  const pump = (): void => {
    if (pumping || !running) return
    pumping = true
    while (sent * fanout - received < (window - perBatch * pubs.length) * fanout) {
      for (let p = 0; p < pubs.length; p++) pubs[p]!.socket.write(batches(p))
      sent += perBatch * pubs.length
    }
    pumping = false
  }
  for (const sub of subs) {
    const acks: number[] = []
    sub.framer.onPacket = (type, flags, buf, body) => {
      if (type !== PUBLISH) return
      received++
      if ((flags & 0x06) !== 0) {
        const tlen = (buf[body]! << 8) | buf[body + 1]!
        acks.push((buf[body + 2 + tlen]! << 8) | buf[body + 3 + tlen]!)
      }
    }
    sub.socket.on('data', () => {
      if (acks.length) {
        const out = Buffer.allocUnsafe(acks.length * 4)
        for (let i = 0; i < acks.length; i++) { const id = acks[i]!; out[i * 4] = 0x40; out[i * 4 + 1] = 2; out[i * 4 + 2] = id >> 8; out[i * 4 + 3] = id & 0xff }
        acks.length = 0
        sub.socket.write(out)
      }
      lastProgress = performance.now()
      pump()
    })
  }
  // QoS 1: publishers read (and ignore) their PUBACKs
  for (const p of pubs) p.framer.onPacket = () => {}
  // a broker that drops messages would stall the window: count it and start over
  const watchdog = setInterval(() => {
    if (performance.now() - lastProgress > 2000) { stalls++; sent = Math.ceil(received / fanout); lastProgress = performance.now(); pump() }
  }, 250)
  pump()
  await sleep(s.warmupMs)
  const r0 = received
  const t0 = performance.now()
  const cpu = loadCpu()
  const broker = new CpuMeter(s.brokerPid)
  broker.start()
  await sleep(s.measureMs)
  const r1 = received
  const seconds = (performance.now() - t0) / 1000
  const brokerCpu = broker.stop()
  // totalReceived: everything the broker delivered, warm-up included (to divide a CPU profile by)
  const result = { rate: (r1 - r0) / seconds, messages: r1 - r0, seconds, brokerCpu, loadCpu: cpu(), stalls, brokerUsPerOp: (brokerCpu / 100) * seconds * 1e6 / Math.max(1, r1 - r0), brokerMainUsPerOp: (broker.main / 100) * seconds * 1e6 / Math.max(1, r1 - r0), totalReceived: r1 }
  running = false
  clearInterval(watchdog)
  return result
}

async function fanin(s: Extract<Scenario, { kind: 'fanin' }>): Promise<Throughput> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const sub = await client(s, minter, `bench-fanin-sub`)
  await subscribe(sub, 'bench/#', s.qos)
  const pubs = await Promise.all(Array.from({ length: s.publishers }, (_, i) => client(s, minter, `bench-fanin-pub-${i}`)))
  const perBatch = Number(process.env.BENCH_BATCH ?? 0) || (s.qos === 0 ? 20 : 5)
  // windows stay under ~1,000 messages: Aedes' mqemitter drains its queue recursively, and a
  // queue of a few thousand overflows the stack (RangeError) in bare Aedes and the gateway alike
  const window = Number(process.env.BENCH_WINDOW ?? 0) || (s.qos === 0 ? 1000 : 600)
  const payload = payloadOf(s.payloadBytes)
  const templates = pubs.map((_, i) => publishPacket(`bench/pub/${i}/data`, payload, s.qos, 1))
  const qos0 = templates.map((t) => Buffer.concat(Array(perBatch).fill(t)))
  const ids = pubs.map(() => 0)
  const batches = s.qos === 0 ? (p: number) => qos0[p]! : (p: number): Buffer => {
    // fresh packet ids per message: the batch is a new buffer (a written buffer is not ours to patch)
    const t = templates[p]!
    const at = publishIdOffset(t)
    const out = Buffer.allocUnsafe(t.length * perBatch)
    for (let k = 0; k < perBatch; k++) {
      t.copy(out, k * t.length)
      const id = (ids[p] = (ids[p]! % 65535) + 1)
      out[k * t.length + at] = id >> 8
      out[k * t.length + at + 1] = id & 0xff
    }
    return out
  }
  try {
    return await throughput(s, pubs, [sub], batches, perBatch, window, 1)
  } finally {
    await Promise.all([...pubs, sub].map(closeClient))
  }
}

async function fanout(s: Extract<Scenario, { kind: 'fanout' }>): Promise<Throughput> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const subs: WireClient[] = []
  for (let i = 0; i < s.subscribers; i++) {
    const c = await client(s, minter, `bench-fanout-sub-${i}`)
    await subscribe(c, 'bench/fanout', 0)
    subs.push(c)
  }
  const pub = await client(s, minter, 'bench-fanout-pub')
  const perBatch = 10
  const batch = Buffer.concat(Array(perBatch).fill(publishPacket('bench/fanout', payloadOf(s.payloadBytes), 0)))
  try {
    return await throughput(s, [pub], subs, () => batch, perBatch, 400, s.subscribers)
  } finally {
    await Promise.all([pub, ...subs].map(closeClient))
  }
}

// ---------------------------------------------------------------- latency at a fixed rate

async function latency(s: Extract<Scenario, { kind: 'latency' }>): Promise<object> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const sub = await client(s, minter, 'bench-lat-sub')
  await subscribe(sub, 'bench/lat', 0)
  const pub = await client(s, minter, 'bench-lat-pub')
  const maxSamples = Math.ceil((s.rate * (s.measureMs + s.warmupMs)) / 1000) + 1000
  const samples = new Float64Array(maxSamples)
  let n = 0
  let measuring = false
  let received = 0
  let masked = 0
  sub.framer.onPacket = (type, flags, buf, body, end) => {
    if (type !== PUBLISH) return
    const now = performance.now()
    received++
    if (!measuring || n >= maxSamples) return
    const p = JSON.parse(incomingPayload(buf, body, end, (flags >> 1) & 3).toString()) as { ts: number; p: string }
    samples[n++] = now - p.ts
    // the gateway's bench policy redacts `p`: proves the mask ran on the measured path
    if (p.p === '[REDACTED]') masked++
  }
  // one write per message (as a device would send them), paced by a 1 ms timer with catch-up
  const pad = Math.max(0, s.payloadBytes - 40)
  const t0 = performance.now()
  let sent = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * s.rate) / 1000)
    while (sent < due) {
      sent++
      pub.socket.write(publishPacket('bench/lat', Buffer.from(`{"ts":${performance.now()},"seq":${sent},"p":"${'x'.repeat(pad)}"}`), 0))
    }
  }, 1)
  await sleep(s.warmupMs)
  measuring = true
  const cpu = loadCpu()
  const broker = new CpuMeter(s.brokerPid)
  broker.start()
  const sent0 = sent
  await sleep(s.measureMs)
  measuring = false
  const sentInWindow = sent - sent0
  clearInterval(timer)
  const brokerCpu = broker.stop()
  const lc = cpu()
  await sleep(200)
  await Promise.all([pub, sub].map(closeClient))
  const sorted = samples.subarray(0, n).sort()
  return {
    p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[n - 1] ?? NaN,
    samples: n, masked, sent: sentInWindow, lost: sent - received, brokerCpu, loadCpu: lc,
  }
}

// ---------------------------------------------------------------- a subscriber that stops reading

/**
 * Issue 14.1: publishers at a fixed rate to two subscribers of the same topics; one stops
 * reading (socket.pause()) for `stallMs`, then vanishes with its backlog. Reports how the
 * broker's RSS grew, whether the reading subscriber kept its full rate, and (via the
 * runner) whether the broker survived the disconnect.
 */
async function slowsub(s: Extract<Scenario, { kind: 'slowsub' }>): Promise<object> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const fast = await client(s, minter, 'bench-slow-fast')
  await subscribe(fast, 'bench/slow/#', 0)
  const slow = await client(s, minter, 'bench-slow-stalled')
  await subscribe(slow, 'bench/slow/#', 0)
  slow.socket.pause()
  const pubs = await Promise.all(Array.from({ length: s.publishers }, (_, i) => client(s, minter, `bench-slow-pub-${i}`)))
  let received = 0
  fast.framer.onPacket = (type) => { if (type === PUBLISH) received++ }
  const pkts = pubs.map((_, i) => publishPacket(`bench/slow/${i}`, payloadOf(s.payloadBytes), 0))
  let sent = 0
  const t0 = performance.now()
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * s.rate) / 1000)
    while (sent < due) { pubs[sent % pubs.length]!.socket.write(pkts[sent % pubs.length]!); sent++ }
  }, 1)
  const rss0 = rssBytes(s.brokerPid)
  const anon0 = rssAnonBytes(s.brokerPid)
  let rssMax = rss0
  const sampler = setInterval(() => { try { rssMax = Math.max(rssMax, rssBytes(s.brokerPid)) } catch { /* broker gone */ } }, 100)
  await sleep(s.stallMs)
  const stalledSent = sent
  const stalledReceived = received
  const rssStalled = rssBytes(s.brokerPid)
  const anonStalled = rssAnonBytes(s.brokerPid)
  // the stalled subscriber disconnects with everything the broker queued for it
  slow.socket.destroy()
  const r1 = received
  const s1 = sent
  await sleep(s.afterMs)
  clearInterval(timer)
  clearInterval(sampler)
  const afterRatio = (received - r1) / Math.max(1, sent - s1)
  let rssAfter: number | undefined
  try { rssAfter = rssBytes(s.brokerPid) } catch { rssAfter = undefined }
  await Promise.all([...pubs, fast].map(closeClient))
  return {
    offered: s.rate, stallSeconds: s.stallMs / 1000,
    fastRatioStalled: stalledReceived / Math.max(1, stalledSent),
    fastRatioAfter: afterRatio,
    rssGrowthMiB: (rssStalled - rss0) / 2 ** 20,
    // without file-backed pages (the gateway's LMDB map counts in RSS once touched)
    rssAnonGrowthMiB: (anonStalled - anon0) / 2 ** 20,
    rssMaxMiB: rssMax / 2 ** 20,
    rssAfterMiB: rssAfter !== undefined ? rssAfter / 2 ** 20 : undefined,
    backlogMiB: ((stalledSent * pkts[0]!.length) / 2 ** 20),
  }
}

// ---------------------------------------------------------------- idle connections held open

let held: WireClient[] = []

async function idle(s: Extract<Scenario, { kind: 'idle' }>): Promise<object> {
  const minter = s.jwk ? new TokenMinter(s.jwk) : undefined
  const ids = Array.from({ length: s.count }, (_, i) => `bench-idle-${i}`)
  const pw = ids.map((id) => minter?.mint(id))
  let next = 0
  let failed = 0
  const worker = async (): Promise<void> => {
    while (next < s.count) {
      const i = next++
      try { held.push(await openClient(s.port, { clientId: ids[i]!, password: pw[i] })) } catch { failed++ }
    }
  }
  await Promise.all(Array.from({ length: s.concurrency }, worker))
  return { opened: held.length, failed }
}

async function releaseIdle(): Promise<void> {
  const all = held
  held = []
  for (let i = 0; i < all.length; i += 200) await Promise.all(all.slice(i, i + 200).map(closeClient))
}

// ----------------------------------------------------------------

process.on('message', (m: In) => {
  if (m.type === 'release') {
    void releaseIdle().then(() => send({ type: 'released' }))
    return
  }
  const run = async (): Promise<object> => {
    switch (m.kind) {
      case 'connects': return connects(m)
      case 'fanin': return fanin(m)
      case 'fanout': return fanout(m)
      case 'latency': return latency(m)
      case 'idle': return idle(m)
      case 'slowsub': return slowsub(m)
    }
  }
  run().then(
    (result) => send({ type: 'result', id: m.id, result }),
    (err: Error) => send({ type: 'error', id: m.id, message: err.message }),
  )
})
process.on('disconnect', () => process.exit(0))
send({ type: 'ready' })
