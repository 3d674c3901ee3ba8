import type { Clock } from '../clock.js'
import type { Config } from '../config/types.js'
import type { Identity } from '../identity/types.js'
import type { Journal } from '../journal/types.js'
import type { Logger } from '../logger.js'
import { openDataEnv, type DataEnv } from '../storage/env.js'
import { foreignCommands, rateSpike, updateRate } from './flags.js'
import { FORMAT_NAMES, agentSignal } from './sniff.js'
import { decodeEntry, emptyMap, encodeEntry, entryKey, openInventoryDb, ownMap, type InventoryDb } from './store.js'
import { addTopic } from './topics.js'
import { SessionTracker, type EffectIndex, type TrackerSink } from './tracker.js'
import { EFFECTS, type EntryType, type FlagName, type InventoryEntry } from './types.js'

export interface InventoryDeps {
  readonly dataDir: string
  readonly config: Config['inventory']
  readonly clock: Clock
  readonly journal: Journal
  readonly logger: Logger
  /** told about every new flag (metrics) */
  readonly onFlag?: (flag: FlagName) => void
}

/**
 * Entries the inventory creates at most (identities + clientIds). Past it, new ones are
 * counted into one `(overflow)` entry per type: a token used from endless made-up clientIds
 * (clientIdBinding: none) cannot grow the data dir or the heap without bound.
 */
export const MAX_ENTRIES = 100_000
export const OVERFLOW_ID = '(overflow)'

const MAX_LISTENERS = 8
const MAX_REMOTES = 16
const MAX_RELATED = 32

type ListField = 'listeners' | 'remotes' | 'related'

/**
 * v moved to (or added at) the end of e[field], bounded to max. A new exact-size array:
 * `push` would reserve room for 16 more elements in every entry's lists. Unchanged (no
 * allocation) when v is already last, as on every reconnect of a device.
 */
function pushBounded(e: InventoryEntry, field: ListField, v: string | undefined, max: number): void {
  const list = e[field]
  if (v === undefined || v === '') return
  const i = list.indexOf(v)
  if (i === list.length - 1 && i >= 0) return
  const next = (i >= 0 ? list.slice(0, i).concat(list.slice(i + 1)) : list).concat(v)
  e[field] = next.length > max ? next.slice(next.length - max) : next
}

/**
 * Who is on the site and what they do: one entry per identity and per clientId in the data
 * dir's LMDB (named DB `inventory`). Sessions count into their SessionTracker; every
 * `flushMs` the trackers are merged into the entries (topics compacted, flags checked) and
 * the changed entries written in one lmdb-js batch. Entries are cached once read, least
 * recently used first out past `cacheEntries`: only entries whose write has committed are
 * evicted (an async put is not visible to a get before its commit), and are read back from
 * LMDB when their device shows up again.
 */
export class Inventory implements TrackerSink {
  readonly #env: DataEnv
  readonly #db: InventoryDb
  readonly #cache = new Map<string, InventoryEntry>()
  readonly #pending = new Set<SessionTracker>()
  readonly #changed = new Set<string>()
  /** keys written by a flush whose batch has not committed yet → that flush's number */
  readonly #unsettled = new Map<string, number>()
  #flushes = 0
  #timer: NodeJS.Timeout | undefined
  #lastFlush: number
  #writes: Promise<unknown> = Promise.resolve()
  #closed = false
  #count: number

  constructor(private readonly d: InventoryDeps, private readonly maxEntries = MAX_ENTRIES) {
    this.#env = openDataEnv(d.dataDir)
    this.#db = openInventoryDb(this.#env)
    this.#count = this.#db.getKeysCount()
    this.#lastFlush = d.clock.now()
  }

  start(): void {
    this.#timer ??= setInterval(() => this.flush(), this.d.config.flushMs)
    this.#timer.unref()
  }

  /** A session began: entries updated now (connects are rare next to publishes); flags checked. */
  connect(identity: Identity, meta: { readonly listener: string; readonly remoteAddress?: string }, session: string): SessionTracker {
    const now = this.d.clock.now()
    const [ide, createdIde] = this.#entry('identity', identity.sub, identity, now)
    const [cli] = this.#entry('client', identity.clientId, identity, now)
    for (const e of [ide, cli]) {
      e.kind = identity.kind
      e.groups = identity.groups
      e.lastSeen = now
      e.connects++
      pushBounded(e, 'listeners', meta.listener, MAX_LISTENERS)
      pushBounded(e, 'remotes', meta.remoteAddress, MAX_REMOTES)
      this.#changed.add(entryKey(e.type, e.id))
    }
    pushBounded(ide, 'related', identity.clientId, MAX_RELATED)
    pushBounded(cli, 'related', identity.sub, MAX_RELATED)
    const hours = this.d.config.newIdentityHours
    if (createdIde && hours > 0) this.#flag(ide, identity, 'new_identity', `first seen ${new Date(now).toISOString()} (${identity.kind})`)
    if (cli.related.length > 1) this.#flag(cli, identity, 'client_id_shared', `clientId ${identity.clientId} used by ${cli.related.join(', ')}`)
    if (ide.related.length > this.d.config.maxClientIds) this.#flag(ide, identity, 'many_client_ids', `${ide.related.length} clientIds: ${ide.related.slice(-5).join(', ')}`)
    return new SessionTracker(this, identity, session)
  }

  /** A subscribe decision (not the hot path): counted, and checked for foreign command topics. */
  subscribed(t: SessionTracker, filter: string, effect: EffectIndex): void {
    t.subscribe(filter, effect)
    const id = t.identity
    const why = foreignCommands(id.kind, id.sub, id.clientId, filter)
    if (why) this.#flag(this.#entry('identity', id.sub, id, this.d.clock.now())[0], id, 'foreign_commands', why)
  }

  dirty(t: SessionTracker): void {
    this.#pending.add(t)
  }

  overflow(t: SessionTracker): void {
    this.#merge(t, this.d.clock.now(), undefined)
  }

  /** Session over: its counts are merged at the next flush; last seen moves to now. */
  disconnect(t: SessionTracker): void {
    const now = this.d.clock.now()
    for (const [type, id] of [['identity', t.identity.sub], ['client', t.identity.clientId]] as const) {
      const e = this.#cache.get(entryKey(type, id))
      if (e) { e.lastSeen = now; this.#changed.add(entryKey(type, id)) }
      // evicted: no LMDB read on the disconnect path; the next flush loads it (last seen then, within flushMs)
      else this.#pending.add(t)
    }
  }

  /** Merges pending counts into the entries and writes the changed ones (one batch). */
  flush(): void {
    if (this.#closed) return
    const now = this.d.clock.now()
    const sec = Math.max(0.001, (now - this.#lastFlush) / 1000)
    this.#lastFlush = now
    const perIdentity = new Map<InventoryEntry, number>()
    for (const t of this.#pending) this.#merge(t, now, perIdentity)
    this.#pending.clear()
    for (const [e, n] of perIdentity) {
      const rate = n / sec
      const why = rateSpike(e, rate, this.d.config.rateFactor)
      if (why) this.#flag(e, undefined, 'rate_spike', why)
      updateRate(e, rate)
    }
    if (this.#changed.size === 0) return this.#trim()
    const seq = ++this.#flushes
    for (const key of this.#changed) {
      const e = this.#cache.get(key)
      if (!e) continue
      this.#writes = this.#db.put(key, encodeEntry(e))
      this.#unsettled.set(key, seq)
    }
    this.#changed.clear()
    // one lmdb-js batch: the last put settles when all of them have committed
    this.#writes.then(() => this.#settled(seq), () => {})
  }

  #settled(seq: number): void {
    for (const [key, s] of this.#unsettled) if (s <= seq) this.#unsettled.delete(key)
    this.#trim()
  }

  /** Cache past its bound: the least recently used entries whose latest write has committed go. */
  #trim(): void {
    let over = this.#cache.size - this.d.config.cacheEntries
    if (over <= 0 || this.#closed) return
    for (const key of this.#cache.keys()) {
      if (this.#changed.has(key) || this.#unsettled.has(key)) continue
      this.#cache.delete(key)
      if (--over === 0) break
    }
  }

  #merge(t: SessionTracker, now: number, perIdentity: Map<InventoryEntry, number> | undefined): void {
    const id = t.identity
    const max = this.d.config.maxTopics
    const [ide] = this.#entry('identity', id.sub, id, now)
    const [cli] = this.#entry('client', id.clientId, id, now)
    // no counts: a session that only connected (and disconnected while its entries were evicted)
    const c = t.counts
    if (c && perIdentity && c.published > 0) perIdentity.set(ide, (perIdentity.get(ide) ?? 0) + c.published)
    for (const e of [ide, cli]) {
      if (c) {
        if (c.pub.size > 0) e.published = ownMap(e.published)
        if (c.sub.size > 0) e.subscribed = ownMap(e.subscribed)
        for (const [topic, s] of c.pub) addTopic(e.published, topic, s.count, s.bytes, max)
        for (const [filter, s] of c.sub) addTopic(e.subscribed, filter, s.count, 0, max)
        for (let i = 0; i < 4; i++) e.formats[FORMAT_NAMES[i]!] += c.formats[i]!
        for (let i = 0; i < EFFECTS.length; i++) e.decisions[EFFECTS[i]!] += c.effects[i]!
      }
      e.lastSeen = now
      this.#changed.add(entryKey(e.type, e.id))
    }
    if (c && !t.agentDone && !ide.flags.has('agent_traffic')) {
      for (const p of c.samples) {
        const why = agentSignal(p)
        if (why) { this.#flag(ide, id, 'agent_traffic', `${why} (declared kind ${id.kind})`); t.agentDone = true; break }
      }
    }
    t.reset()
  }

  #entry(type: EntryType, id: string, identity: Identity, now: number): [InventoryEntry, boolean] {
    const key = entryKey(type, id)
    let e = this.#cache.get(key)
    if (e) {
      // most recently used last (Map order): #trim evicts from the front
      this.#cache.delete(key)
      this.#cache.set(key, e)
      return [e, false]
    }
    const stored = this.#db.get(key)
    if (stored) {
      e = decodeEntry(stored)
      this.#cache.set(key, e)
      return [e, false]
    }
    if (this.#count >= this.maxEntries && id !== OVERFLOW_ID) {
      if (this.#count === this.maxEntries) this.d.logger.warn({ event: 'inventory_full', max: this.maxEntries }, 'inventory full: new identities and clientIds are counted in the (overflow) entries')
      this.#count++
      return this.#entry(type, OVERFLOW_ID, identity, now)
    }
    this.#count++
    e = {
      type, id, kind: identity.kind, groups: identity.groups, firstSeen: now, lastSeen: now, connects: 0,
      listeners: [], remotes: [], related: [], published: emptyMap(), subscribed: emptyMap(),
      formats: { json: 0, msgpack: 0, text: 0, binary: 0 },
      decisions: { allow: 0, deny: 0, hold: 0, would_deny: 0, would_hold: 0, would_mask: 0 },
      rateAvg: 0, rateWindows: 0, flags: emptyMap(),
    }
    this.#cache.set(key, e)
    this.#changed.add(key)
    return [e, true]
  }

  /** Raises a flag once per entry (until acknowledged it stays; acknowledged, it is not raised again). */
  #flag(e: InventoryEntry, identity: Identity | undefined, flag: FlagName, detail: string): void {
    if (e.flags.has(flag)) return
    const now = this.d.clock.now()
    e.flags = ownMap(e.flags)
    e.flags.set(flag, { at: now, detail })
    this.#changed.add(entryKey(e.type, e.id))
    const who = e.type === 'identity' ? { sub: e.id, clientId: identity?.clientId } : { clientId: e.id, sub: identity?.sub }
    this.d.journal.record({ type: 'flag', flag, ...who, kind: e.kind, reason: detail.slice(0, 300), entry: e.type })
    this.d.onFlag?.(flag)
    this.d.logger.warn({ event: 'inventory_flag', flag, entry: e.type, id: e.id }, `inventory flag ${flag}: ${detail}`)
  }

  /** Operator acknowledgement of a flag; journaled. false when there is no such open flag. */
  acknowledge(type: EntryType, id: string, flag: FlagName, by: string): boolean {
    const key = entryKey(type, id)
    let e = this.#cache.get(key)
    if (!e) {
      const stored = this.#db.get(key)
      if (!stored) return false
      e = decodeEntry(stored)
      this.#cache.set(key, e)
    }
    const f = e.flags.get(flag)
    if (!f || f.acked) return false
    f.acked = { by, at: this.d.clock.now() }
    this.#changed.add(key)
    this.d.journal.record({ type: 'flag', flag, acknowledged: true, by, entry: type, ...(type === 'identity' ? { sub: id } : { clientId: id }), kind: e.kind })
    this.flush()
    return true
  }

  /** Every entry: the stored ones, with the cached (fresher) ones over them. */
  entries(): InventoryEntry[] {
    const out = new Map<string, InventoryEntry>()
    for (const { key, value } of this.#db.getRange()) out.set(key, decodeEntry(value))
    for (const [k, e] of this.#cache) out.set(k, e)
    return [...out.values()]
  }

  /** Open: not acknowledged, and for `new_identity` first seen less than newIdentityHours ago. */
  isOpen(e: InventoryEntry, name: FlagName): boolean {
    const f = e.flags.get(name)
    if (!f || f.acked) return false
    return name !== 'new_identity' || this.d.clock.now() - e.firstSeen < this.d.config.newIdentityHours * 3_600_000
  }

  hasOpenFlags(e: InventoryEntry): boolean {
    for (const n of e.flags.keys()) if (this.isOpen(e, n)) return true
    return false
  }

  /** open flags by name, for the metrics gauge */
  openFlags(): Map<FlagName, number> {
    const m = new Map<FlagName, number>()
    for (const e of this.entries()) for (const n of e.flags.keys()) if (this.isOpen(e, n)) m.set(n, (m.get(n) ?? 0) + 1)
    return m
  }

  /** entries held in memory (bounded by cacheEntries once their writes have committed) */
  get cached(): number { return this.#cache.size }

  /** resolves once the last flush's writes have committed (and the cache is trimmed) */
  async written(): Promise<void> { await this.#writes }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#timer) clearInterval(this.#timer)
    this.flush()
    this.#closed = true
    await this.#writes.catch((err: Error) => this.d.logger.error({ event: 'inventory_write_failed', err: err.message }, 'inventory write failed'))
    await this.#env.release()
  }
}
