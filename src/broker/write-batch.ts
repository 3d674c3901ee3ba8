import type { Writable } from 'node:stream'

/**
 * Lets a connection's writes of one event-loop turn leave in a few writev calls, not one each.
 *
 * mqtt-packet corks a stream per packet and uncorks it on the next tick, and Aedes writes each
 * delivery in a setImmediate of its own: left alone, every packet a subscriber gets costs one
 * writev syscall (a QoS 0 fan-in spent about half its main-thread time in writev).
 *
 * Call this right after handing a delivery to Aedes: the connection is corked now and released
 * by an immediate queued behind Aedes' write. Immediates run in order, so when the last of a
 * turn's releases runs, every write of that turn has been made and the cork count reaches zero:
 * the packets go out together, in the order they were written. A turn never holds a later
 * turn's writes, so no connection stays corked under steady load.
 */
export function batchWrites(conn: Writable): void {
  conn.cork()
  setImmediate(release, conn)
}

/**
 * Held bytes flushed early, below net's 16 KiB highWaterMark: a batch alone never makes
 * write() report back-pressure, which Aedes answers by waiting for 'drain' (the whole buffer
 * written) before it completes each delivery. Only a socket the kernel will not take from
 * does that, as without batching.
 */
const FLUSH_BYTES = 8 * 1024

function release(conn: Writable): void {
  conn.uncork()
  const held = conn.writableCorked
  if (held > 0 && conn.writableLength >= Math.min(FLUSH_BYTES, conn.writableHighWaterMark >> 1)) {
    // out with what is written so far; the deliveries still to be written are corked again
    for (let i = 0; i < held; i++) conn.uncork()
    for (let i = 0; i < held; i++) conn.cork()
  }
}
