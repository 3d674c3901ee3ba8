import type { Identity } from '../identity/types.js'
import { matchTemplate, usableValue, type Level, type Placeholder } from './filter.js'

/** Below this many literal children a node scans an array (no substring); above, a Map. */
const SMALL = 8

interface TplEdge {
  readonly parts: readonly (string | Placeholder)[]
  readonly node: TrieNode
}

/**
 * One level of a topic trie of rule filters. Leaves hold rule indices: `end` for filters
 * ending here, `hash` for filters whose next level is `#` (matching this level and below).
 */
export class TrieNode {
  litKeys: string[] = []
  litNodes: TrieNode[] = []
  litMap: Map<string, TrieNode> | undefined
  tpls: TplEdge[] = []
  plus: TrieNode | undefined
  end: number[] = []
  hash: number[] = []
  /** every rule at or below this node (a `#` subscription overlaps them all) */
  subtree: number[] = []

  insert(levels: readonly Level[], rule: number): void {
    let n: TrieNode = this
    for (const l of levels) {
      if (l.kind === 'hash') {
        n.hash.push(rule)
        return
      }
      if (l.kind === 'plus') n = n.plus ??= new TrieNode()
      else if (l.kind === 'lit') {
        const i = n.litKeys.indexOf(l.text)
        if (i >= 0) n = n.litNodes[i]!
        else {
          const c = new TrieNode()
          n.litKeys.push(l.text)
          n.litNodes.push(c)
          n = c
        }
      } else {
        const e = n.tpls.find((t) => t.parts.length === l.parts.length && t.parts.every((p, i) => p === l.parts[i]))
        if (e) n = e.node
        else {
          const c = new TrieNode()
          n.tpls.push({ parts: l.parts, node: c })
          n = c
        }
      }
    }
    n.end.push(rule)
  }

  /** Freezes the shape: maps for wide nodes, subtree lists, sorted leaves. */
  finish(): number[] {
    const all = new Set<number>([...this.end, ...this.hash])
    const kids = [...this.litNodes, ...this.tpls.map((t) => t.node), ...(this.plus ? [this.plus] : [])]
    for (const k of kids) for (const r of k.finish()) all.add(r)
    if (this.litKeys.length > SMALL) this.litMap = new Map(this.litKeys.map((k, i) => [k, this.litNodes[i]!]))
    this.subtree = [...all].sort((a, b) => a - b)
    return this.subtree
  }
}

function pushAll(out: number[], rules: readonly number[]): void {
  for (let i = 0; i < rules.length; i++) out.push(rules[i]!)
}

/** Collects the rules whose filter matches a concrete topic. Allocation-free for narrow nodes. */
export function matchTopic(n: TrieNode, id: Identity, topic: string, start: number, first: boolean, out: number[]): void {
  if (start > topic.length) {
    pushAll(out, n.end)
    pushAll(out, n.hash)
    return
  }
  // MQTT: a wildcard in the first level never matches a `$` topic; only literal rules reach them
  const dollar = first && topic.charCodeAt(start) === 36
  if (!dollar) pushAll(out, n.hash)
  let end = topic.indexOf('/', start)
  if (end < 0) end = topic.length
  const len = end - start
  if (n.litMap !== undefined) {
    const c = n.litMap.get(topic.slice(start, end))
    if (c !== undefined) matchTopic(c, id, topic, end + 1, false, out)
  } else {
    const keys = n.litKeys
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!
      if (k.length === len && topic.startsWith(k, start)) matchTopic(n.litNodes[i]!, id, topic, end + 1, false, out)
    }
  }
  if (dollar) return
  const tpls = n.tpls
  for (let i = 0; i < tpls.length; i++) {
    const t = tpls[i]!
    if (matchTemplate(t.parts, id, topic, start, end)) matchTopic(t.node, id, topic, end + 1, false, out)
  }
  if (n.plus !== undefined) matchTopic(n.plus, id, topic, end + 1, false, out)
}

/** Rules whose filter matches every topic the subscription filter `s` can match (s ⊆ rule). */
export function coverFilter(n: TrieNode, id: Identity, s: readonly string[], i: number, out: number[]): void {
  if (i === s.length) {
    pushAll(out, n.end)
    pushAll(out, n.hash)
    return
  }
  const level = s[i]!
  const dollar = i === 0 && level.charCodeAt(0) === 36
  if (!dollar) pushAll(out, n.hash)
  if (level === '#') return
  if (level === '+') {
    if (n.plus !== undefined) coverFilter(n.plus, id, s, i + 1, out)
    return
  }
  const k = n.litKeys.indexOf(level)
  if (k >= 0) coverFilter(n.litNodes[k]!, id, s, i + 1, out)
  if (dollar) return
  for (const t of n.tpls) if (matchTemplate(t.parts, id, level, 0, level.length)) coverFilter(t.node, id, s, i + 1, out)
  if (n.plus !== undefined) coverFilter(n.plus, id, s, i + 1, out)
}

/** Rules whose filter shares at least one topic with the subscription filter `s`. */
export function overlapFilter(n: TrieNode, id: Identity, s: readonly string[], i: number, out: number[]): void {
  if (i === s.length) {
    pushAll(out, n.end)
    pushAll(out, n.hash)
    return
  }
  const level = s[i]!
  const first = i === 0
  const dollar = first && level.charCodeAt(0) === 36
  if (!dollar) pushAll(out, n.hash)
  if (level === '#') {
    if (!first) return pushAll(out, n.subtree)
    // `#` at the root reaches no `$` tree
    for (let j = 0; j < n.litKeys.length; j++) if (n.litKeys[j]!.charCodeAt(0) !== 36) pushAll(out, n.litNodes[j]!.subtree)
    for (const t of n.tpls) pushAll(out, t.node.subtree)
    if (n.plus !== undefined) pushAll(out, n.plus.subtree)
    pushAll(out, n.end)
    return
  }
  if (level === '+') {
    for (let j = 0; j < n.litKeys.length; j++) if (!(first && n.litKeys[j]!.charCodeAt(0) === 36)) overlapFilter(n.litNodes[j]!, id, s, i + 1, out)
    for (const t of n.tpls) if (t.parts.every((p) => typeof p === 'string' || usableValue(p.get(id)))) overlapFilter(t.node, id, s, i + 1, out)
    if (n.plus !== undefined) overlapFilter(n.plus, id, s, i + 1, out)
    return
  }
  const k = n.litKeys.indexOf(level)
  if (k >= 0) overlapFilter(n.litNodes[k]!, id, s, i + 1, out)
  if (dollar) return
  for (const t of n.tpls) if (matchTemplate(t.parts, id, level, 0, level.length)) overlapFilter(t.node, id, s, i + 1, out)
  if (n.plus !== undefined) overlapFilter(n.plus, id, s, i + 1, out)
}
