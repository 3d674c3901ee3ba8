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
 * out at FLUSH_BYTES, and before any write that would take them to the stream's highWaterMark
 * (guardedWrite). Only a socket the kernel will not take from shows back-pressure, as without
 * batching.
 */
export function batchWrites(conn: Writable): void {
  // a stream that writes its chunks one by one anyway (ws' createWebSocketStream: a frame each) gains nothing
  if (typeof conn._writev !== 'function') return
  // once: Node replaces write itself after the peer's FIN (writeAfterFIN); guarding again would
  // take guardedDestroy for the stream's own destroy, and destroy() would call itself (found by review)
  if (!(BASE_WRITE in conn)) guard(conn)
  conn.cork()
  setImmediate(release, conn)
}

/** Held bytes flushed at this much, well under net's 16 KiB highWaterMark. */
const FLUSH_BYTES = 8 * 1024

/** connections left corked by deliveries whose releases run in a later turn */
const carried = new Set<Writable>()
let sweeping = false

function release(conn: Writable): void {
  conn.uncork()
  if (conn.writableCorked === 0) return
  if (conn.writableLength >= FLUSH_BYTES) flush(conn)
  else if (!carried.has(conn)) {
    carried.add(conn)
    if (!sweeping) {
      sweeping = true
      setImmediate(sweep)
    }
  }
}

const BASE_WRITE = Symbol('edgewarden.baseWrite')
const BASE_DESTROY = Symbol('edgewarden.baseDestroy')
type Guarded = Writable & { [BASE_WRITE]: Writable['write']; [BASE_DESTROY]: Writable['destroy'] }

/**
 * Every write to a batched connection, ours or not (a PUBACK, a SUBACK, a retained message sent
 * on SUBSCRIBE, a persistent session's QoS 1 written after its store), first sends what is held
 * when the chunk would take the buffer to the highWaterMark: write() then reports back-pressure
 * only when it would have without the batch. One shared function; the stream's own write is
 * kept on it under a symbol.
 */
function guard(conn: Writable): void {
  const g = conn as Guarded
  g[BASE_WRITE] = conn.write
  conn.write = guardedWrite
  g[BASE_DESTROY] = conn.destroy
  conn.destroy = guardedDestroy
}

/**
 * Aedes closes a connection with destroy() (DISCONNECT, keepalive, token expiry, shutdown, a
 * slow reader), which drops whatever a stream still buffers: the batch's held bytes would go
 * with it although they were written before the close. They are handed to the socket first
 * (what the kernel takes is sent before the FIN; with a write already in progress they stay
 * queued and go with the close, as before); the releases still queued find it uncorked.
 */
function guardedDestroy(this: Guarded, err?: Error): Writable {
  if (!this.destroyed && this.writableCorked > 0) {
    const held = this.writableCorked
    for (let i = 0; i < held; i++) this.uncork()
  }
  return (this[BASE_DESTROY] as (e?: Error) => Writable).call(this, err)
}

function guardedWrite(this: Guarded, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  const held = this.writableLength
  if (held > 0 && this.writableCorked > 0) {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : ((chunk as Uint8Array | undefined)?.byteLength ?? 0)
    if (held + n >= this.writableHighWaterMark) flush(this)
  }
  return (this[BASE_WRITE] as (c: unknown, e?: unknown, f?: unknown) => boolean).call(this, chunk, encoding, cb)
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
