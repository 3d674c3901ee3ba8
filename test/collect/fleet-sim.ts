import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GENESIS, packr, sealRecord } from '../../src/journal/codec.js'
import { encodeBatch, type AuditBatch } from '../../src/journal/batch.js'
import { CheckpointSigner, generateSigningKey } from '../../src/journal/signing.js'

/**
 * A simulated gateway journal: records sealed with the journal's own codec (the exact bytes
 * and chain the gateway writes), batches encoded and checkpoints signed with the journal's own
 * batch and signing code — what the shipper publishes, without an LMDB per gateway.
 */
export class SimGateway {
  seq = 0
  hash = GENESIS
  ts: number
  readonly publicJwk: Record<string, unknown>
  readonly #signer: CheckpointSigner

  private constructor(readonly gw: string, readonly fleet: string, readonly key: Awaited<ReturnType<typeof generateSigningKey>>, ts: number) {
    this.publicJwk = key.publicJwk as Record<string, unknown>
    this.#signer = new CheckpointSigner({ ...key, alg: 'EdDSA', created: true, path: '' })
    this.ts = ts
  }

  /** Another history signed by the same key (a stolen key, or a gateway whose journal was reset). */
  fork(tsShift = 1): SimGateway {
    const f = new SimGateway(this.gw, this.fleet, this.key, this.ts + tsShift)
    f.seq = this.seq
    f.hash = this.hash
    return f
  }

  static async create(gw: string, fleet = 'acme', ts = Date.parse('2026-11-24T23:55:00Z')): Promise<SimGateway> {
    return new SimGateway(gw, fleet, await generateSigningKey('EdDSA'), ts)
  }

  get topic(): string { return `fleet/${this.fleet}/${this.gw}/audit` }

  /** `<dir>/<gw>.pub.jwk`, the file `collect --keys DIR` reads */
  writeKey(dir: string): void {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, `${this.gw}.pub.jwk`), JSON.stringify(this.publicJwk))
  }

  /** The next n records (publish decisions of a few devices), as stored bytes. */
  records(n: number, extra: Record<string, unknown> = {}): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < n; i++) {
      const seq = ++this.seq
      // 1 record per 10 ms: a 100k-record run spans midnight UTC, so two daily partitions
      this.ts += 10
      const dev = seq % 50
      const rec = {
        seq, ts: this.ts, gw: this.gw, type: seq % 17 === 0 ? 'publish_denied' : 'publish', session: `s-${dev}`, clientId: `dev-${dev}`, sub: `dev-${dev}`,
        kind: 'device', topic: `site/1/dev/dev-${dev}/telemetry`, qos: 1, retain: false, bytes: 120, rule: seq % 17 === 0 ? 'no-firehose' : 'sensors-own-telemetry',
        policyRev: 'r1', payload: Buffer.from(`{"t":${seq},"v":${(seq * 7) % 100}}`), ...extra, prev: this.hash,
      }
      const { bytes, hash } = sealRecord(rec, this.hash)
      this.hash = hash
      out.push(bytes)
    }
    return out
  }

  /** A shipped batch over these stored records (a signed checkpoint on the last). */
  async batch(records: Buffer[]): Promise<AuditBatch> {
    const first = (packr.unpack(records[0]!) as { seq: number }).seq
    const lastRec = packr.unpack(records[records.length - 1]!) as { seq: number; hash: string }
    const checkpoint = await this.#signer.sign({ gw: this.gw, seq: lastRec.seq, hash: lastRec.hash })
    return { v: 1, gw: this.gw, fleet: this.fleet, first, last: lastRec.seq, records, checkpoint }
  }

  /** The payload the shipper publishes for the next n records. */
  async next(n: number): Promise<Buffer> {
    return encodeBatch(await this.batch(this.records(n)))
  }
}

/** Flips one byte inside a stored record's topic string: the bytes no longer match the hash. */
export function editRecord(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes)
  const at = copy.indexOf('telemetry')
  copy[at] = 'T'.charCodeAt(0)
  return copy
}
