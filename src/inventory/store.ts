import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Database } from 'lmdb'
import { openDataEnv, type DataEnv } from '../storage/env.js'
import { EFFECTS, FORMATS, type FlagName, type FlagState, type InventoryEntry, type InventoryView, type TopicStat } from './types.js'

/** The inventory's named database in the data dir's LMDB env; keys `i:<sub>` and `c:<clientId>`. */
export const INVENTORY_DB = 'inventory'

export type InventoryDb = Database<StoredEntry, string>

export function openInventoryDb(env: DataEnv): InventoryDb {
  return env.root.openDB<StoredEntry, string>({ name: INVENTORY_DB, encoding: 'msgpack' })
}

/**
 * One Map shared by every entry with an empty topic set or no flags (most cached entries: an
 * empty Map costs ~180 B). Read-only: a writer takes its own Map first (`ownMap`); a write
 * that forgot to throws instead of leaking into every entry.
 */
class SharedEmptyMap<K, V> extends Map<K, V> {
  override set(): this { throw new Error('inventory: write to the shared empty map') }
}
const EMPTY: Map<unknown, unknown> = new SharedEmptyMap()
export const emptyMap = <K, V>(): Map<K, V> => EMPTY as Map<K, V>
/** m, or a new Map in its place when m is the shared empty one */
export const ownMap = <K, V>(m: Map<K, V>): Map<K, V> => (m === EMPTY ? new Map<K, V>() : m)
const mapOf = <K, V>(entries: [K, V][]): Map<K, V> => (entries.length === 0 ? emptyMap<K, V>() : new Map(entries))

export const entryKey = (type: InventoryEntry['type'], id: string): string => (type === 'identity' ? 'i:' : 'c:') + id

/** Stored form: Maps become arrays of tuples (topic names are data, never object keys). */
export interface StoredEntry {
  v: 1
  type: InventoryEntry['type']
  id: string
  kind: string
  groups: string[]
  firstSeen: number
  lastSeen: number
  connects: number
  listeners: string[]
  remotes: string[]
  related: string[]
  published: [string, number, number][]
  subscribed: [string, number][]
  formats: number[]
  decisions: number[]
  rateAvg: number
  rateWindows: number
  flags: [FlagName, number, string, string?, number?][]
}

export function encodeEntry(e: InventoryEntry): StoredEntry {
  return {
    v: 1, type: e.type, id: e.id, kind: e.kind, groups: [...e.groups], firstSeen: e.firstSeen, lastSeen: e.lastSeen, connects: e.connects,
    listeners: e.listeners, remotes: e.remotes, related: e.related,
    published: [...e.published].map(([f, s]) => [f, s.count, s.bytes]),
    subscribed: [...e.subscribed].map(([f, s]) => [f, s.count]),
    formats: FORMATS.map((f) => e.formats[f]),
    decisions: EFFECTS.map((f) => e.decisions[f]),
    rateAvg: e.rateAvg, rateWindows: e.rateWindows,
    flags: [...e.flags].map(([n, f]) => (f.acked ? [n, f.at, f.detail, f.acked.by, f.acked.at] : [n, f.at, f.detail])),
  }
}

export function decodeEntry(s: StoredEntry): InventoryEntry {
  // exact size (filter's result reserves room to grow): entries stay cached in memory
  const arr = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice() : [])
  return {
    type: s.type, id: s.id, kind: s.kind, groups: arr(s.groups), firstSeen: s.firstSeen, lastSeen: s.lastSeen, connects: s.connects ?? 0,
    listeners: arr(s.listeners), remotes: arr(s.remotes), related: arr(s.related),
    published: mapOf((s.published ?? []).map(([f, c, b]): [string, TopicStat] => [f, { count: c, bytes: b }])),
    subscribed: mapOf((s.subscribed ?? []).map(([f, c]): [string, TopicStat] => [f, { count: c, bytes: 0 }])),
    formats: Object.fromEntries(FORMATS.map((f, i) => [f, s.formats?.[i] ?? 0])) as InventoryEntry['formats'],
    decisions: Object.fromEntries(EFFECTS.map((f, i) => [f, s.decisions?.[i] ?? 0])) as InventoryEntry['decisions'],
    rateAvg: s.rateAvg ?? 0, rateWindows: s.rateWindows ?? 0,
    flags: mapOf((s.flags ?? []).map(([n, at, detail, by, ackAt]): [FlagName, FlagState] => [n, { at, detail, ...(by !== undefined ? { acked: { by, at: ackAt ?? at } } : {}) }])),
  }
}

const iso = (ms: number): string => new Date(ms).toISOString()

export function entryView(e: InventoryEntry): InventoryView {
  const byCount = <T extends { count: number }>(a: T[]): T[] => a.sort((x, y) => y.count - x.count)
  return {
    type: e.type, id: e.id, kind: e.kind, groups: e.groups, firstSeen: iso(e.firstSeen), lastSeen: iso(e.lastSeen), connects: e.connects,
    listeners: e.listeners, remotes: e.remotes, related: e.related,
    published: byCount([...e.published].map(([filter, s]) => ({ filter, count: s.count, bytes: s.bytes }))),
    subscribed: byCount([...e.subscribed].map(([filter, s]) => ({ filter, count: s.count }))),
    formats: { ...e.formats }, decisions: { ...e.decisions },
    flags: [...e.flags].map(([flag, f]) => ({ flag, at: iso(f.at), detail: f.detail, ...(f.acked ? { acked: { by: f.acked.by, at: iso(f.acked.at) } } : {}) })),
  }
}

/** Reads every entry of a data dir's inventory (CLI; works while the gateway runs). */
export async function readInventory(dataDir: string): Promise<InventoryEntry[]> {
  if (!existsSync(join(dataDir, 'state.lmdb'))) return []
  const env = openDataEnv(dataDir)
  try {
    const db = openInventoryDb(env)
    const out: InventoryEntry[] = []
    for (const { value } of db.getRange()) out.push(decodeEntry(value))
    return out
  } finally {
    await env.release()
  }
}
