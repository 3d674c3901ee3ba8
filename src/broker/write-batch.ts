import type { Writable } from 'node:stream'

/**
 * Lets a connection's writes of one event-loop turn leave in a few writev calls, not one each.
 *
 * mqtt-packet corks a stream per packet and uncorks it on the next tick, and Aedes writes each
 * delivery in a setImmediate of its own: left alone, every packet a subscriber gets costs one
 * writev syscall (a QoS 0 fan-in spent about half its main-thread time in writev).
 *
 * Call this right after handing Aedes a delivery whose write it makes in that immediate: the
 * connection is corked now and released by an immediate queued behind Aedes' write.
 * Immediates run in order, so when the last of a turn's releases runs, every write of that
 * turn has been made and the cork count reaches zero: the packets go out together, in the
 * order they were written.
 *
 * Never because of the batch alone may write() report back-pressure: Aedes answers it by
 * holding the delivery's completion until the socket has fully drained, and the delivery bound
 * (delivery-limits.ts) would count messages the subscriber has read as queued. So held bytes go
 * out at FLUSH_BYTES, and before a delivery whose packet would take them to the stream's
 * highWaterMark. Only a socket the kernel will not take from shows back-pressure, as without
 * batching.
 */
export function batchWrites(conn: Writable, bytes: number): void {
  // a stream that writes its chunks one by one anyway (ws' createWebSocketStream: a frame each) gains nothing
  if (typeof conn._writev !== 'function') return
  conn.cork()
  releases.push(conn, bytes)
  setImmediate(release)
}

/** Held bytes flushed at this much, well under net's 16 KiB highWaterMark. */
const FLUSH_BYTES = 8 * 1024
/** a packet's fixed header, topic length and packet id, over its topic and payload */
const HEADER_BYTES = 16

/** connection, packet bytes: one pair per release queued, in the order they will run */
const releases: (Writable | number)[] = []
let head = 0
/** connections left corked by deliveries whose releases run in a later turn */
const carried = new Set<Writable>()
let sweeping = false

function release(): void {
  const conn = releases[head] as Writable
  head += 2
  if (head === releases.length) {
    releases.length = 0
    head = 0
  }
  conn.uncork()
  if (conn.writableCorked > 0) {
    if (conn.writableLength >= FLUSH_BYTES) flush(conn)
    else if (!carried.has(conn)) {
      carried.add(conn)
      if (!sweeping) {
        sweeping = true
        setImmediate(sweep)
      }
    }
  }
  // the next release's delivery is written before it runs: room for its packet
  if (head < releases.length) {
    const next = releases[head] as Writable
    const held = next.writableLength
    if (held > 0 && next.writableCorked > 0 && held + (releases[head + 1] as number) + HEADER_BYTES >= next.writableHighWaterMark) flush(next)
  }
}

/**
 * A delivery routed from an immediate has its write and release in the next turn, and keeps
 * its connection corked until then: what earlier deliveries wrote would wait with it, turn
 * after turn under steady load. Queued from a release, this runs at the start of the next
 * turn's immediates, before any of that turn's writes, and sends what is held.
 */
function sweep(): void {
  sweeping = false
  for (const conn of carried) if (conn.writableCorked > 0 && conn.writableLength > 0) flush(conn)
  carried.clear()
}

/** Sends what is held; the deliveries still to be written stay corked. */
function flush(conn: Writable): void {
  const held = conn.writableCorked
  for (let i = 0; i < held; i++) conn.uncork()
  for (let i = 0; i < held; i++) conn.cork()
}
