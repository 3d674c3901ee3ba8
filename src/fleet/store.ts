import type { Database } from 'lmdb'
import { openDataEnv, type DataEnv } from '../storage/env.js'

export interface ActiveBundle {
  readonly version: number
  readonly jws: string
  readonly appliedAt: number
  readonly digest: string
}

/** The applied fleet bundle, kept in LMDB so a reboot without network starts with it. */
export class BundleStore {
  readonly #env: DataEnv
  readonly #db: Database<ActiveBundle, string>
  constructor(dataDir: string) {
    this.#env = openDataEnv(dataDir)
    this.#db = this.#env.root.openDB<ActiveBundle, string>({ name: 'fleet', encoding: 'msgpack' })
  }
  active(): ActiveBundle | undefined { return this.#db.get('active') }
  async save(b: ActiveBundle): Promise<void> { await this.#db.put('active', b) }
  async close(): Promise<void> { await this.#env.release() }
}
