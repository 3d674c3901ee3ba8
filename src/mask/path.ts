/** One step of a field path: a key, any key (`*`), every array element (`[*]`) or one element (`[N]`). */
export type PathSeg =
  | { readonly k: 'key'; readonly name: string }
  | { readonly k: 'anyKey' }
  | { readonly k: 'each' }
  | { readonly k: 'index'; readonly i: number }

export class PathError extends Error {}

const BRACKET = /\[(\*|\d{1,9})\]/y

/**
 * Parses `owner.email`, `readings[*].serial`, `*.secret`, `[*].id`, `m[0][*]`.
 * Keys cannot contain `.`, `[` or `]`; a key that is only `*` means any key.
 */
export function parsePath(path: string): readonly PathSeg[] {
  const segs: PathSeg[] = []
  let i = 0
  const n = path.length
  let expectKey = true
  while (i < n) {
    if (path[i] === '[') {
      BRACKET.lastIndex = i
      const m = BRACKET.exec(path)
      if (!m) throw new PathError(`invalid index at position ${i} (use [*] or [N])`)
      segs.push(m[1] === '*' ? { k: 'each' } : { k: 'index', i: Number(m[1]) })
      i = BRACKET.lastIndex
      expectKey = false
      continue
    }
    if (path[i] === '.') {
      if (expectKey) throw new PathError(`empty key at position ${i}`)
      i++
      expectKey = true
      if (i === n) throw new PathError('path ends with "."')
      continue
    }
    if (!expectKey) throw new PathError(`expected "." or "[" at position ${i}`)
    let j = i
    while (j < n && path[j] !== '.' && path[j] !== '[') {
      if (path[j] === ']') throw new PathError(`unexpected "]" at position ${j}`)
      j++
    }
    const name = path.slice(i, j)
    segs.push(name === '*' ? { k: 'anyKey' } : { k: 'key', name })
    i = j
    expectKey = false
  }
  if (segs.length === 0) throw new PathError('empty path')
  return Object.freeze(segs)
}
