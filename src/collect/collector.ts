import '../broker/quiet-debug.js'
import { hostname } from 'node:os'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { decodeBatch } from '../journal/batch.js'
import type { Logger } from '../logger.js'
import type { KeyRing } from './keys.js'
import type { AuditSink, StoreResult } from './sink.js'
import { isProblem, verifyBatch } from './verify.js'

export interface CollectorOptions {
  readonly upstream: string
  readonly sink: AuditSink
  readonly keys: KeyRing
  readonly logger: Logger
  /** shared subscription group: collectors of one group split the batches */
  readonly group?: string
  /** topic filter of shipped batches (SPEC: upstream.audit.topic, default fleet/<fleet>/<gw>/audit) */
  readonly topic?: string
  /** MQTT clientId prefix; each connection adds -<n> */
  readonly clientId?: string
  /** MQTT connections of this process in the group (each stores one batch at a time) */
  readonly connections?: number
  readonly mqtt?: IClientOptions
  /** a compressed batch larger than this is refused unread */
  readonly maxBatchBytes?: number
}

export interface CollectorStats {
  /** batches handled (stored, found duplicate, or refused) */
  batches: number
  inserted: number
  duplicates: number
  gaps: number
  tamper: number
  failures: number
}

export type IngestResult = StoreResult | { readonly tamper: string }

/**
 * The cloud-side receiver of shipped journal batches: a shared MQTT subscription
 * (`$share/<group>/fleet/+/+/audit`) on the cloud broker, each batch decoded, verified
 * (verify.ts) and stored (an AuditSink). A batch is acknowledged (PUBACK) only after it is
 * stored or recorded as tamper; a store failure leaves it unacknowledged, so the broker sends
 * it again after the reconnect.
 */
export class Collector {
  readonly stats: CollectorStats = { batches: 0, inserted: 0, duplicates: 0, gaps: 0, tamper: 0, failures: 0 }
  readonly #o: CollectorOptions
  readonly #clients: MqttClient[] = []

  constructor(o: CollectorOptions) {
    this.#o = o
  }

  get filter(): string {
    return `$share/${this.#o.group ?? 'edgewarden-collect'}/${this.#o.topic ?? 'fleet/+/+/audit'}`
  }

  /** Decode, verify, store one received payload. Rejects only when the sink fails (not acknowledged then). */
  async ingest(topic: string, payload: Buffer): Promise<IngestResult> {
    const r = await this.#ingest(topic, payload)
    this.stats.batches++
    return r
  }

  async #ingest(topic: string, payload: Buffer): Promise<IngestResult> {
    const { sink, keys, logger } = this.#o
    const refuse = async (reason: string, extra: { gw?: string; first?: number; last?: number; seq?: number } = {}): Promise<IngestResult> => {
      this.stats.tamper++
      logger.warn({ event: 'audit_batch_refused', topic, ...extra, reason }, 'audit batch refused')
      await sink.tamper({ topic, reason, payload, ...extra })
      return { tamper: reason }
    }
    if (payload.length > (this.#o.maxBatchBytes ?? 16 * 1024 * 1024)) return refuse(`batch of ${payload.length} bytes is over the limit`)
    let batch
    try {
      batch = await decodeBatch(payload)
    } catch (err) {
      return refuse(`not an audit batch: ${(err as Error).message}`)
    }
    const meta = { gw: batch.gw, first: batch.first, last: batch.last }
    const v = await verifyBatch(topic, batch, keys)
    if (isProblem(v)) return refuse(v.problem, { ...meta, ...(v.seq !== undefined ? { seq: v.seq } : {}) })
    // verifyBatch loaded (and cached) this key
    let res: StoreResult
    try {
      res = await sink.store(v, (await keys.get(v.gw))?.jwk)
    } catch (err) {
      // a batch the database refuses for its data (SQLSTATE class 22 data exception, 23 integrity)
      // would fail the same way on every redelivery: refuse it instead of retrying forever;
      // anything else (connection lost, database down) is retried through redelivery
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string' && /^2[23]/.test(code)) return refuse(`the store rejected the batch (SQLSTATE ${code}): ${(err as Error).message}`, meta)
      throw err
    }
    if (res.problem) return refuse(res.problem, { ...meta, ...(res.seq !== undefined ? { seq: res.seq } : {}) })
    this.stats.inserted += res.inserted
    this.stats.duplicates += res.duplicates
    if (res.gap) {
      this.stats.gaps++
      logger.warn({ event: 'audit_gap', gw: v.gw, from: res.gap.from, to: res.gap.to }, 'audit records missing (gap recorded)')
    }
    return res
  }

  async start(): Promise<void> {
    const n = Math.max(1, this.#o.connections ?? 1)
    const prefix = this.#o.clientId ?? `ew-collect-${hostname()}-${process.pid}`
    await Promise.all(Array.from({ length: n }, (_, i) => this.#connect(`${prefix}-${i}`)))
  }

  #connect(clientId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      // a persistent session: batches published while this collector is away wait for it
      const c = mqtt.connect(this.#o.upstream, { clientId, clean: false, reconnectPeriod: 2000, protocolVersion: 4, ...this.#o.mqtt })
      this.#clients.push(c)
      c.handleMessage = (packet, done) => {
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
        this.ingest(packet.topic, payload).then(() => done(), (err: Error) => {
          this.stats.failures++
          this.#o.logger.error({ event: 'audit_store_failed', topic: packet.topic, err: err.message }, 'storing an audit batch failed: left unacknowledged')
          // no PUBACK; dropping the connection makes the broker send it again after reconnect
          done(err)
          c.stream?.destroy()
        })
      }
      c.once('connect', () => {
        c.subscribe(this.filter, { qos: 1 }, (err, granted) => {
          if (err || granted?.[0]?.qos === 128) return reject(err ?? new Error(`subscription to ${this.filter} refused`))
          resolve()
        })
      })
      c.on('error', (err) => this.#o.logger.warn({ event: 'collector_mqtt_error', err: err.message }, 'collector MQTT error'))
    })
  }

  async stop(): Promise<void> {
    await Promise.all(this.#clients.splice(0).map((c) => new Promise<void>((r) => c.end(false, {}, () => r()))))
  }
}
