import type { Grant, HeldMessage, HoldStore } from './types.js'

export class MemoryHoldStore implements HoldStore {
  readonly #holds = new Map<string, HeldMessage>()
  readonly #grants = new Map<string, Grant>()
  async putHold(h: HeldMessage): Promise<void> { this.#holds.set(h.id, h) }
  getHold(id: string): HeldMessage | undefined { return this.#holds.get(id) }
  async deleteHold(id: string): Promise<void> { this.#holds.delete(id) }
  listHolds(): HeldMessage[] { return [...this.#holds.values()].sort((a, b) => a.createdAt - b.createdAt) }
  async putGrant(g: Grant): Promise<void> { this.#grants.set(g.id, g) }
  async deleteGrant(id: string): Promise<void> { this.#grants.delete(id) }
  listGrants(): Grant[] { return [...this.#grants.values()].sort((a, b) => a.createdAt - b.createdAt) }
  async close(): Promise<void> {}
}
