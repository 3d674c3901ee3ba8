import t from 'tap'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import type { Test } from 'tap'
import { batchWrites } from '../../src/broker/write-batch.js'

/** A connected socket pair on 127.0.0.1; `writes` counts the sender's calls into libuv (one writev or write each). */
async function pair(t: Test): Promise<{ out: Socket; received: () => Buffer; writes: () => number; peerEnd: () => Promise<void>; peerWrite: (b: Buffer) => void }> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const out = connect((server.address() as AddressInfo).port, '127.0.0.1')
  const [inn] = (await once(server, 'connection')) as [Socket]
  await once(out, 'connect')
  const chunks: Buffer[] = []
  inn.on('data', (d: Buffer) => chunks.push(d))
  let writes = 0
  const s = out as unknown as { _writev: (...a: unknown[]) => void; _write: (...a: unknown[]) => void }
  const wv = s._writev.bind(out)
  const w = s._write.bind(out)
  s._writev = (...a) => { writes++; wv(...a) }
  s._write = (...a) => { writes++; w(...a) }
  t.teardown(() => { out.destroy(); inn.destroy(); server.close() })
  return { out, received: () => Buffer.concat(chunks), writes: () => writes, peerEnd: async () => { inn.end() }, peerWrite: (b: Buffer) => { inn.write(b) } }
}

/** What Aedes does per delivery: the write in an immediate of its own, corked to the next tick as mqtt-packet does; batchWrites right after. */
function deliver(out: Socket, packet: Buffer, refused: { n: number }, batch: boolean): void {
  setImmediate(() => {
    out.cork()
    if (!out.write(packet)) refused.n++
    process.nextTick(() => out.uncork())
  })
  if (batch) batchWrites(out)
}

const packetOf = (i: number): Buffer => Buffer.from(`packet ${String(i).padStart(6, '0')};`.padEnd(80, '.'))

/** What the reader has once `length` bytes arrived (or 5 s passed). */
async function arrived(p: { received: () => Buffer }, length: number): Promise<Buffer> {
  const t0 = Date.now()
  while (p.received().length < length && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10))
  return p.received()
}

async function turn(): Promise<void> {
  await new Promise((r) => setImmediate(r))
  await new Promise((r) => setImmediate(r))
}

t.test("without batching each delivery is one write call (the cost this module removes)", async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  for (let i = 0; i < 100; i++) deliver(p.out, packetOf(i), refused, false)
  await turn()
  t.equal(p.writes(), 100)
})

t.test('one turn of deliveries leaves in a few write calls, in order, and the stream ends uncorked', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  const n = 1000
  for (let i = 0; i < n; i++) deliver(p.out, packetOf(i), refused, true)
  await turn()
  t.equal(p.out.writableCorked, 0, 'uncorked once the turn is over')
  // 80 KB in one turn, flushed at 8 KiB: about ten
  t.ok(p.writes() <= 20, `write calls: ${p.writes()} for ${n} packets`)
  t.equal(refused.n, 0, 'write() never reported back-pressure because of the batch (the reader keeps up)')
  const want = Buffer.concat(Array.from({ length: n }, (_, i) => packetOf(i)))
  t.ok((await arrived(p, want.length)).equals(want), 'every byte, in the order written')
})

t.test('a later turn is never held by an earlier one: steady load flushes every turn', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  let sent = 0
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 20; i++) deliver(p.out, packetOf(sent++), refused, true)
    await turn()
    t.equal(p.out.writableCorked, 0)
    t.equal(p.out.writableLength, 0, `round ${round}: nothing left buffered`)
  }
  t.ok(p.writes() <= 50 * 2, `write calls: ${p.writes()} for ${sent} packets in 50 turns`)
})

t.test('a delivery Aedes decides not to write (no write made) still releases its cork', async (t) => {
  const p = await pair(t)
  batchWrites(p.out)
  batchWrites(p.out)
  t.equal(p.out.writableCorked, 2)
  await turn()
  t.equal(p.out.writableCorked, 0)
  p.out.write(packetOf(1))
  t.equal(p.out.writableLength, 0, 'a later plain write goes out at once')
})

t.test('bytes the batch holds are sent when the connection is destroyed before their release', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  for (let i = 0; i < 8; i++) deliver(p.out, packetOf(i), refused, true)
  // the ninth delivery's write, then Aedes closing the connection (DISCONNECT, keepalive, token
  // expiry, shutdown) in the same turn, before that delivery's release: the stream is still corked
  let corked = -1
  setImmediate(() => {
    p.out.cork()
    p.out.write(packetOf(8))
    process.nextTick(() => p.out.uncork())
  })
  setImmediate(() => {
    corked = p.out.writableCorked
    p.out.destroy()
  })
  batchWrites(p.out)
  await turn()
  t.equal(corked, 1, 'destroyed while corked, the nine packets held')
  const want = Buffer.concat(Array.from({ length: 9 }, (_, i) => packetOf(i)))
  t.ok((await arrived(p, want.length)).equals(want), 'every byte written before the close arrived, in order')
  t.ok(p.out.destroyed, 'and the connection is closed')
})

t.test('bytes carried to the next turn are sent when the connection is destroyed in between', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  let corked = -1
  let held = -1
  const closed = new Promise<void>((done) => {
    // the close comes from I/O read in the next turn's poll phase (a DISCONNECT, a peer's reset),
    // before that turn's immediates release what is held
    p.out.once('data', () => {
      corked = p.out.writableCorked
      held = p.out.writableLength
      p.out.destroy()
      done()
    })
  })
  for (let i = 0; i < 4; i++) deliver(p.out, packetOf(i), refused, true)
  setImmediate(() => {
    p.out.cork()
    p.out.write(packetOf(4))
    process.nextTick(() => p.out.uncork())
  })
  // a delivery routed from an immediate (MQEmitter's queue under load, routing after a journal
  // commit), between the fifth write and its release: its cork and release belong to the next
  // turn, so the five packets stay held until then
  setImmediate(() => {
    deliver(p.out, packetOf(5), refused, true)
    p.peerWrite(Buffer.from('x'))
  })
  batchWrites(p.out)
  await closed
  t.equal(corked, 1, 'destroyed between turns, still corked by the routed delivery')
  t.equal(held, 5 * 80, 'with the five packets held')
  const want = Buffer.concat(Array.from({ length: 5 }, (_, i) => packetOf(i)))
  t.ok((await arrived(p, want.length)).equals(want), 'every byte written before the close arrived, in order')
})

t.test("a delivery after the peer's FIN, then destroy: no recursion, the socket closes", async (t) => {
  const p = await pair(t)
  batchWrites(p.out)
  await turn()
  // the peer half-closes: Node replaces write() with writeAfterFIN on the socket itself
  p.out.resume()
  const ended = once(p.out, 'end')
  p.out.on('error', () => {})
  await p.peerEnd()
  await ended
  // a delivery routed while Aedes' close is still unsubscribing the client
  batchWrites(p.out)
  t.doesNotThrow(() => p.out.destroy(), 'destroy() returns')
  t.ok(p.out.destroyed, 'the socket is destroyed')
  await turn()
})

t.test('mixed sizes: held bytes go out before a packet that would take them to the highWaterMark', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  const sizes = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 7 : 10) * 1024)
  const packets = sizes.map((n, i) => Buffer.alloc(n, i))
  for (const packet of packets) deliver(p.out, packet, refused, true)
  await turn()
  t.equal(refused.n, 0, 'write() never reported back-pressure because of the batch')
  const want = Buffer.concat(packets)
  t.ok((await arrived(p, want.length)).equals(want), 'every byte, in order')
})

t.test('deliveries routed from immediates, one a turn: nothing waits more than a turn behind them', async (t) => {
  const p = await pair(t)
  const refused = { n: 0 }
  let maxHeld = 0
  let k = 0
  // a router running as an immediate each turn (as MQEmitter's queue does under load, or routing
  // after a journal commit): it delivers before the previous turn's write and release run, so
  // the connection is never uncorked by the releases alone
  await new Promise<void>((done) => {
    const route = (): void => {
      maxHeld = Math.max(maxHeld, p.out.writableLength)
      if (k === 60) return done()
      setImmediate(route)
      deliver(p.out, packetOf(k++), refused, true)
    }
    setImmediate(route)
  })
  t.ok(maxHeld <= 2 * 80, `held at most two packets between turns (${maxHeld} bytes)`)
  await turn()
  await turn()
  t.equal(p.out.writableCorked, 0)
  t.equal(p.out.writableLength, 0)
})

t.test("a write that is not the batch's own (a PUBACK, a retained message on SUBSCRIBE) never meets back-pressure because of it", async (t) => {
  const p = await pair(t)
  const results: boolean[] = []
  // a large unbatched write lands under a batch's cork, then a batched one in the same turn
  deliver(p.out, Buffer.alloc(100, 1), { n: 0 }, true)
  setImmediate(() => {
    void Promise.resolve().then(() => { results.push(p.out.write(Buffer.alloc(10_000, 2))) })
  })
  const refused = { n: 0 }
  deliver(p.out, Buffer.alloc(7_000, 3), refused, true)
  await turn()
  await turn()
  t.same(results, [true], 'the unbatched write')
  t.equal(refused.n, 0, 'the batched one after it')
  t.equal(p.out.writableCorked, 0)
  t.equal((await arrived(p, 17_100)).length, 17_100, 'every byte')
})
