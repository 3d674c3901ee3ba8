import type { Journal, JournalEntry } from './types.js'

/** Keeps entries in memory; for unit tests of stages and for embedding without a data dir. */
export class MemoryJournal implements Journal {
  readonly entries: JournalEntry[] = []
  readonly writable = true
  append(entry: JournalEntry): Promise<number> {
    this.entries.push(entry)
    return Promise.resolve(this.entries.length)
  }
  /** through append(), so a subclass that overrides append (tests: failing, gated journals) governs both */
  commit(entry: JournalEntry): Promise<unknown> {
    return this.append(entry)
  }
  record(entry: JournalEntry): void {
    this.entries.push(entry)
  }
  flush(): Promise<void> { return Promise.resolve() }
  close(): Promise<void> { return Promise.resolve() }
}
