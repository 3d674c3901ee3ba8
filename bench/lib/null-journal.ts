import { MemoryJournal } from '../../src/journal/memory.js'

/** A journal that acknowledges at once and keeps nothing: the "journal off" baseline (MemoryJournal would grow with the run). */
export function nullJournal(): MemoryJournal {
  return Object.assign(new MemoryJournal(), { append: () => Promise.resolve(0), record: () => {} })
}
