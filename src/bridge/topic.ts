/** MQTT topic filter matching (`+` one level, `#` the rest), without splitting per call. */
export function matchTopic(filter: string, topic: string): boolean {
  // a filter starting with a wildcard never matches $-topics ([MQTT-4.7.2-1])
  if (topic.charCodeAt(0) === 36 && (filter.charCodeAt(0) === 43 || filter.charCodeAt(0) === 35)) return false
  let f = 0
  let t = 0
  const fl = filter.length
  const tl = topic.length
  while (f < fl) {
    const c = filter.charCodeAt(f)
    if (c === 35 /* # */) return true
    if (c === 43 /* + */) {
      while (t < tl && topic.charCodeAt(t) !== 47) t++
      f++
    } else {
      const fEnd = nextSlash(filter, f)
      const tEnd = nextSlash(topic, t)
      // lengths first: most mismatches end there without a slice
      if (fEnd - f !== tEnd - t || filter.slice(f, fEnd) !== topic.slice(t, tEnd)) return false
      f = fEnd
      t = tEnd
    }
    // both at a separator or at the end
    if (f === fl) return t === tl
    if (t === tl) {
      // 'a/#' matches 'a'
      return filter.length - f === 2 && filter.charCodeAt(f + 1) === 35
    }
    f++
    t++
  }
  return t === tl
}

function nextSlash(s: string, from: number): number {
  const i = s.indexOf('/', from)
  return i === -1 ? s.length : i
}

/** true when `filter` is a valid MQTT topic filter */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return false
    if (l.includes('+') && l !== '+') return false
  }
  return true
}

/** true when `topic` is a valid topic name to publish to (no wildcards, not empty) */
export function isValidTopic(topic: string): boolean {
  return topic.length > 0 && topic.length <= 65535 && !/[+#\u0000]/.test(topic)
}
