import { Gauge, type Registry } from 'prom-client'
import type { LmdbJournal } from './lmdb.js'

/** Journal gauges, read at scrape time (nothing on the append path). */
export function registerJournalMetrics(registry: Registry, j: LmdbJournal): void {
  const registers = [registry]
  new Gauge({ name: 'edgewarden_journal_last_seq', help: 'sequence number of the newest journal record', registers, collect() { this.set(j.lastSeq) } })
  new Gauge({ name: 'edgewarden_journal_lag_records', help: 'records written but not yet shipped upstream', registers, collect() { this.set(Math.max(0, j.lastSeq - j.shippedSeq)) } })
  new Gauge({ name: 'edgewarden_journal_bytes', help: 'bytes held by the journal', registers, collect() { this.set(j.bytes) } })
  new Gauge({ name: 'edgewarden_journal_writable', help: '0 while the journal refuses records (full, onFull: block)', registers, collect() { this.set(j.writable ? 1 : 0) } })
}
