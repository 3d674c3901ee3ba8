import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { openDataEnv, type DataEnv } from '../storage/env.js'
import { ewError } from '../errors.js'
import { decodeRecord } from './codec.js'
import { firstSeq, lastSeq, openJournalDbs, readShipped, type JournalDbs } from './store.js'
import type { JournalRecord } from './types.js'

/** Read access to a data dir's journal for the CLI (works while the gateway runs: LMDB is multi-process). */
export interface JournalReader {
  readonly dbs: JournalDbs
  readonly dataDir: string
  first(): number | undefined
  last(): number | undefined
  shipped(): number
  /** records in seq order from `from` (inclusive), decoded */
  records(from?: number, to?: number): Iterable<JournalRecord>
  /** the newest n records, oldest first */
  tail(n: number): JournalRecord[]
  close(): Promise<void>
}

export function openJournalReader(dataDir: string): JournalReader {
  if (!existsSync(join(dataDir, 'state.lmdb'))) throw ewError('EW_USAGE', `no journal in ${dataDir} (gateway.dataDir): start the gateway first or pass --data-dir`)
  const env: DataEnv = openDataEnv(dataDir)
  const dbs = openJournalDbs(env)
  return {
    dbs, dataDir,
    first: () => firstSeq(dbs),
    last: () => lastSeq(dbs),
    shipped: () => readShipped(dbs),
    *records(from = 0, to?: number) {
      for (const { value } of dbs.records.getRange({ start: from, ...(to !== undefined ? { end: to + 1 } : {}) })) yield decodeRecord(value)
    },
    tail(n) {
      const out: JournalRecord[] = []
      for (const { value } of dbs.records.getRange({ reverse: true, limit: n })) out.push(decodeRecord(value))
      return out.reverse()
    },
    close: () => env.release(),
  }
}
