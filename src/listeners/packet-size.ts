/**
 * Watches the MQTT fixed headers in a byte stream and reports a packet whose declared
 * length exceeds the limit, before the parser buffers its body. Aedes has no packet size
 * limit of its own; without this, one CONNECT declaring 256 MiB makes the broker buffer
 * it. The state carries across chunk boundaries; the cost is a few comparisons per packet.
 */
export class PacketSizeGuard {
  #skip = 0
  #inLength = false
  #length = 0
  #multiplier = 1
  #lengthBytes = 0

  constructor(readonly maxBytes: number) {}

  /** false: a packet is too large or its length field is malformed */
  feed(buf: Uint8Array): boolean {
    const n = buf.length
    let i = 0
    while (i < n) {
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, n - i)
        this.#skip -= take
        i += take
        continue
      }
      if (!this.#inLength) {
        // first byte of a fixed header
        this.#inLength = true
        this.#length = 0
        this.#multiplier = 1
        this.#lengthBytes = 0
        i++
        continue
      }
      const b = buf[i++]!
      this.#length += (b & 0x7f) * this.#multiplier
      this.#multiplier *= 128
      this.#lengthBytes++
      if (this.#length + 1 + this.#lengthBytes > this.maxBytes) return false
      if ((b & 0x80) === 0) {
        this.#inLength = false
        this.#skip = this.#length
      } else if (this.#lengthBytes >= 4) {
        return false
      }
    }
    return true
  }
}
