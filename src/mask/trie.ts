/** MQTT filters (`+`, `#`) → values, matched against concrete topics. Built once, read-only after. */
interface Node<T> {
  readonly children: Map<string, Node<T>>
  plus?: Node<T>
  /** values of filters ending in `#` at this level (match this level and everything below) */
  hash: T[]
  /** values of filters ending exactly here */
  here: T[]
}

const node = <T>(): Node<T> => ({ children: new Map(), hash: [], here: [] })

export class TopicTrie<T> {
  readonly #root: Node<T> = node()

  /** Throws on an invalid filter (wildcard not filling a level, `#` not last, empty). */
  add(filter: string, value: T): void {
    validateFilter(filter)
    let n = this.#root
    const levels = filter.split('/')
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!
      if (l === '#') { n.hash.push(value); return }
      if (l === '+') n = n.plus ??= node()
      else {
        let c = n.children.get(l)
        if (!c) n.children.set(l, (c = node()))
        n = c
      }
    }
    n.here.push(value)
  }

  /** Every value whose filter matches `topic` (a value may appear more than once). */
  match(topic: string): T[] {
    const out: T[] = []
    const levels = topic.split('/')
    // wildcards at the first level do not match `$` topics (MQTT 3.1.1 §4.7.2)
    const dollar = topic.startsWith('$')
    const walk = (n: Node<T>, i: number): void => {
      if (n.hash.length > 0 && !(i === 0 && dollar)) out.push(...n.hash)
      if (i === levels.length) { out.push(...n.here); return }
      const c = n.children.get(levels[i]!)
      if (c) walk(c, i + 1)
      if (n.plus && !(i === 0 && dollar)) walk(n.plus, i + 1)
    }
    walk(this.#root, 0)
    return out
  }
}

export function validateFilter(filter: string): void {
  if (filter.length === 0) throw new Error('empty topic filter')
  if (filter.includes('\u0000')) throw new Error('topic filter contains a NUL character')
  if (filter.includes('${')) throw new Error(`placeholders are not supported in mask topics ('${filter}')`)
  const levels = filter.split('/')
  levels.forEach((l, i) => {
    if (l === '#' && i !== levels.length - 1) throw new Error(`'#' must be the last level (in '${filter}')`)
    if (l !== '#' && l !== '+' && (l.includes('#') || l.includes('+'))) throw new Error(`a wildcard must fill a whole level (in '${filter}')`)
  })
}
