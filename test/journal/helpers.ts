import type { Test } from 'tap'
import { LmdbJournal, type LmdbJournalOptions } from '../../src/journal/lmdb.js'

/** An LMDB journal in dir with test-friendly defaults, closed at teardown. */
export function openJournal(t: Test, dataDir: string, o: Partial<LmdbJournalOptions> = {}): LmdbJournal {
  const j = new LmdbJournal({
    dataDir, gw: 'gw-test', maxBytes: 64 * 1024 * 1024, retainShippedDays: 7, onFull: 'block',
    recordPayloads: 'masked', commitDelayMs: 0, ...o,
  })
  t.teardown(() => j.close())
  return j
}
