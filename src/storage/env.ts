import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'

/**
 * The one LMDB environment of a data dir (`<dataDir>/state.lmdb`). Every durable store —
 * journal, outbox, hold queue, broker persistence, inventory — opens its own named
 * database in it (`env.openDB({ name })`), so one commit can span stores and there is one
 * file to back up. Opened once per process and shared by reference count.
 */
export interface DataEnv {
  readonly root: RootDatabase
  readonly path: string
  release(): Promise<void>
}

const open_ = new Map<string, { root: RootDatabase; refs: number }>()

/** The environment's options; a thread opening the same file must use the same (src/journal/writer.ts). */
export function DATA_ENV_OPTIONS(mapSizeBytes?: number): { maxDbs: number; noSync: false; mapSize: number; compression: false } {
  return {
    maxDbs: 64,
    // sync on commit: an acknowledged record survives power loss
    noSync: false,
    // commits are batched by lmdb-js (group commit), see PERFORMANCE-NOTES
    mapSize: mapSizeBytes ?? 4 * 1024 ** 3,
    compression: false,
  }
}

export function openDataEnv(dataDir: string, opts: { mapSizeBytes?: number } = {}): DataEnv {
  const path = join(dataDir, 'state.lmdb')
  let e = open_.get(path)
  if (!e) {
    mkdirSync(dataDir, { recursive: true })
    const root = open({ path, ...DATA_ENV_OPTIONS(opts.mapSizeBytes) })
    e = { root, refs: 0 }
    open_.set(path, e)
  }
  e.refs++
  const entry = e
  let released = false
  return {
    root: entry.root,
    path,
    async release() {
      if (released) return
      released = true
      entry.refs--
      if (entry.refs === 0) {
        open_.delete(path)
        await entry.root.close()
      }
    },
  }
}
