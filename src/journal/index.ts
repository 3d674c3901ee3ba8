import type { Config } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import { LmdbJournal } from './lmdb.js'
import { loadSealer } from './seal.js'
import { CheckpointSigner, ensureGatewayKey } from './signing.js'
import { defaultAuditTopic, Shipper, type AuditLink } from './shipper.js'

export type * from './types.js'
export { LmdbJournal } from './lmdb.js'
export { MemoryJournal } from './memory.js'
export { verifyJournal } from './verify.js'
export { Shipper, defaultAuditTopic, type AuditLink } from './shipper.js'

/** The gateway's journal from config: LMDB in `gateway.dataDir` (SPEC §7). */
export async function createJournal(config: Config, o: { logger: Logger; clock: Clock }): Promise<LmdbJournal> {
  const j = config.journal
  const sealer = j.recordPayloads === 'sealed' ? await loadSealer(config.masking.sealTo) : undefined
  // the gateway's checkpoint key is created on first start, with the journal
  await ensureGatewayKey(config.gateway.dataDir)
  const journal = new LmdbJournal({
    dataDir: config.gateway.dataDir, gw: config.gateway.id,
    maxBytes: j.maxBytes, retainShippedDays: j.retainShippedDays, onFull: j.onFull,
    recordPayloads: j.recordPayloads, commitDelayMs: j.commitDelayMs,
    sealer, logger: o.logger.child({ stage: 'journal' }), clock: o.clock,
  })
  journal.warm()
  return journal
}

/** The audit shipper over an upstream link, signing checkpoints with the data dir's gateway key. */
export async function createShipper(config: Config, journal: LmdbJournal, link: AuditLink, o: { logger: Logger; clock: Clock }): Promise<Shipper> {
  const key = await ensureGatewayKey(config.gateway.dataDir)
  const audit = config.upstream?.audit
  return new Shipper({
    journal, link, signer: new CheckpointSigner(key),
    topic: audit?.topic ?? defaultAuditTopic(config.gateway.fleet, config.gateway.id),
    fleet: config.gateway.fleet,
    batchRecords: audit?.batchRecords ?? 1000,
    batchMs: audit?.batchMs ?? 1000,
    logger: o.logger.child({ stage: 'shipper' }), clock: o.clock,
  })
}
