import { compactDecrypt, importJWK, type JWK } from 'jose'
import type { JournalReader } from './reader.js'

/** One recorded publish of a session, as `replay` re-sends it. */
export interface ReplayItem {
  readonly seq: number
  readonly ts: number
  readonly topic: string
  readonly qos: 0 | 1
  readonly retain: boolean
  /** undefined when the journal holds no payload (recordPayloads: none, or sealed without a key) */
  readonly payload?: Buffer
}

/**
 * The publishes a session made, in journal order, with payloads: as recorded (`masked`), or
 * opened with the auditors' private key (`sealed`, when `auditorKey` is given).
 */
export async function sessionPublishes(reader: JournalReader, session: string, auditorKey?: JWK): Promise<ReplayItem[]> {
  const key = auditorKey ? await importJWK(auditorKey, auditorKey.alg ?? (auditorKey.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW')) : undefined
  const out: ReplayItem[] = []
  for (const r of reader.records()) {
    if (r.type !== 'publish' || r.session !== session || typeof r.topic !== 'string') continue
    let payload = r.payload ? Buffer.from(r.payload) : undefined
    if (!payload && r.sealed && key) payload = Buffer.from((await compactDecrypt(r.sealed, key)).plaintext)
    out.push({ seq: r.seq, ts: r.ts, topic: r.topic, qos: r.qos === 1 ? 1 : 0, retain: r.retain === true, payload })
  }
  return out
}

/**
 * Sends items with their original spacing divided by `speed` (0: no waiting), awaiting each
 * `send` so order is kept.
 */
export async function replayItems(items: readonly ReplayItem[], speed: number, send: (item: ReplayItem) => Promise<void>): Promise<void> {
  const start = performance.now()
  const t0 = items[0]?.ts ?? 0
  for (const item of items) {
    if (speed > 0) {
      const wait = (item.ts - t0) / speed - (performance.now() - start)
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
    await send(item)
  }
}
