import type { Logger } from '../logger.js'
import type { Clock } from '../clock.js'
import { systemClock } from '../clock.js'
import { decodeRecord, storedHash } from './codec.js'
import { encodeFramedBatch, RecordFrames } from './batch.js'
import type { LmdbJournal } from './lmdb.js'
import type { CheckpointSigner } from './signing.js'

/** What the shipper needs of the upstream connection (the bridge's UpstreamLink fits). */
export interface AuditLink {
  /** resolves once the cloud broker acknowledged the QoS 1 publish; rejects when not connected */
  publish(topic: string, payload: Buffer, opts: { qos: 1 }): Promise<void>
  readonly connected: boolean
  on(event: 'up' | 'down', fn: () => void): unknown
  off(event: 'up' | 'down', fn: () => void): unknown
}

export interface ShipperOptions {
  readonly journal: LmdbJournal
  readonly link: AuditLink
  readonly signer: CheckpointSigner
  readonly topic: string
  readonly fleet: string
  readonly batchRecords: number
  readonly batchMs: number
  readonly logger: Logger
  readonly clock?: Clock
}

/** A batch stops growing past this many record bytes (before gzip): cloud brokers cap packet size. */
export const MAX_BATCH_BYTES = 1024 * 1024

export function defaultAuditTopic(fleet: string, gw: string): string {
  return `fleet/${fleet}/${gw}/audit`
}

/**
 * Ships committed journal records upstream in batches (size `batchRecords` records or
 * MAX_BATCH_BYTES, or age `batchMs`), each with a signed checkpoint, at QoS 1. A batch counts as shipped only
 * after the cloud's PUBACK; the shipped-up-to seq is persisted in LMDB, so after a restart
 * or an outage shipping resumes right after it (at least once: a batch acknowledged just
 * before a crash may be sent again; the receiver deduplicates by seq).
 */
export class Shipper {
  readonly #o: ShipperOptions
  readonly #clock: Clock
  #stopped = true
  #wake?: () => void
  #loop?: Promise<void>
  #failures = 0
  /** the batch being built; its buffer is reused from batch to batch (one is encoded at a time) */
  readonly #frames = new RecordFrames()
  shippedBatches = 0
  shippedRecords = 0

  constructor(o: ShipperOptions) {
    this.#o = o
    this.#clock = o.clock ?? systemClock
  }

  start(): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#o.link.on('up', this.#poke)
    this.#loop = this.#run()
  }

  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.#o.link.off('up', this.#poke)
    this.#poke()
    await this.#loop
  }

  readonly #poke = (): void => {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.#wake = undefined; resolve() }, ms)
      this.#wake = () => { clearTimeout(t); resolve() }
    })
  }

  async #run(): Promise<void> {
    const { journal, batchRecords, batchMs } = this.#o
    const tick = Math.max(10, Math.min(batchMs, 200))
    while (!this.#stopped) {
      if (!this.#o.link.connected) { await this.#sleep(5000); continue }
      const from = Math.max(journal.shippedSeq + 1, journal.firstSeq)
      const avail = journal.committedSeq - from + 1
      if (avail <= 0) { await this.#sleep(tick); continue }
      if (avail < batchRecords && !this.#bytesFull(from, journal.committedSeq)) {
        const first = journal.dbs.records.getBinary(from)
        const age = first ? this.#clock.now() - decodeRecord(first).ts : batchMs
        if (age < batchMs) { await this.#sleep(Math.min(tick, batchMs - age)); continue }
      }
      try {
        await this.#ship(from, Math.min(from + batchRecords - 1, journal.committedSeq))
        this.#failures = 0
      } catch (err) {
        this.#failures++
        this.#o.logger.warn({ event: 'audit_ship_failed', err: (err as Error).message, attempt: this.#failures }, 'shipping an audit batch failed: retrying')
        await this.#sleep(Math.min(30_000, 250 * 2 ** Math.min(this.#failures, 7)))
      }
    }
  }

  /** A batch is also full once its records reach MAX_BATCH_BYTES. */
  #bytesFull(from: number, to: number): boolean {
    let bytes = 0
    for (const { value } of this.#o.journal.dbs.recordViews.getRange({ start: from, end: to + 1 })) {
      bytes += value.length
      if (bytes >= MAX_BATCH_BYTES) return true
    }
    return false
  }

  async #ship(from: number, upTo: number): Promise<void> {
    const { journal, link, signer } = this.#o
    const frames = this.#frames
    frames.reset()
    let last = from - 1
    // each record is copied once, from LMDB's shared read buffer straight into the batch's
    // frames (recordViews): a Buffer of every record first, then packing them, cost the event
    // loop 2-3 µs a record, a tenth of a bridged message's (bench/README.md, "The cloud bridge:
    // MQTT.js' store, the shipper's reads, a core of its own")
    for (const { key, value } of journal.dbs.recordViews.getRange({ start: from, end: upTo + 1 })) {
      // at least one record per batch, however large
      if (frames.count > 0 && frames.bytes + value.length > MAX_BATCH_BYTES) break
      frames.add(value)
      last = key
    }
    // everything in range was dropped (onFull: drop-oldest) meanwhile: nothing to send
    if (frames.count === 0) return journal.markShipped(upTo)
    const checkpoint = await signer.sign({ gw: journal.gw, seq: last, hash: storedHash(frames.lastRecord) })
    const payload = await encodeFramedBatch({ v: 1, gw: journal.gw, fleet: this.#o.fleet, first: from, last, checkpoint }, frames)
    await link.publish(this.#o.topic, payload, { qos: 1 })
    journal.dbs.checkpoints.put(last, checkpoint).catch(() => {})
    await journal.markShipped(last)
    this.shippedBatches++
    this.shippedRecords += frames.count
  }
}
