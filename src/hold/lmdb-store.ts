import type { Database } from 'lmdb'
import { openDataEnv, type DataEnv } from '../storage/env.js'
import type { Grant, HeldMessage, HoldStore } from './types.js'

/**
 * Holds and grants in the data dir's LMDB environment (named DBs `holds`, `grants`).
 * Writes are awaited: a hold is acknowledged to the publisher only once it is durable.
 * Reads are synchronous (LMDB reads are memory-mapped).
 */
export class LmdbHoldStore implements HoldStore {
  readonly #env: DataEnv
  readonly #holds: Database<HeldMessage, string>
  readonly #grants: Database<Grant, string>

  constructor(dataDir: string) {
    this.#env = openDataEnv(dataDir)
    this.#holds = this.#env.root.openDB<HeldMessage, string>({ name: 'holds', encoding: 'msgpack' })
    this.#grants = this.#env.root.openDB<Grant, string>({ name: 'grants', encoding: 'msgpack' })
  }

  async putHold(h: HeldMessage): Promise<void> { await this.#holds.put(h.id, h) }
  getHold(id: string): HeldMessage | undefined { return normalize(this.#holds.get(id)) }
  async deleteHold(id: string): Promise<void> { await this.#holds.remove(id) }
  listHolds(): HeldMessage[] {
    return [...this.#holds.getRange()].map((e) => normalize(e.value)!).sort((a, b) => a.createdAt - b.createdAt)
  }
  async putGrant(g: Grant): Promise<void> { await this.#grants.put(g.id, g) }
  async deleteGrant(id: string): Promise<void> { await this.#grants.remove(id) }
  listGrants(): Grant[] { return [...this.#grants.getRange()].map((e) => e.value).sort((a, b) => a.createdAt - b.createdAt) }
  async close(): Promise<void> { await this.#env.release() }
}

/** msgpack gives payloads back as Buffer (a Uint8Array); keep the type honest. */
function normalize(h: HeldMessage | undefined): HeldMessage | undefined {
  return h && !Buffer.isBuffer(h.payload) ? { ...h, payload: Buffer.from(h.payload) } : h
}
