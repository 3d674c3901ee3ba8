import { createHash } from 'node:crypto'

// LMDB keys are at most 1978 bytes; MQTT topics may be 65535. Long ones are keyed by hash
// (the value always carries the topic), short ones by themselves so prefix scans work.
const MAX_KEY_BYTES = 1000

export function isLongTopic(topic: string): boolean {
  return topic.length > MAX_KEY_BYTES / 4 && Buffer.byteLength(topic) > MAX_KEY_BYTES
}

export function topicHash(topic: string): string {
  return createHash('sha256').update(topic).digest('base64url')
}

/**
 * key part for a filter stored under a clientId (up to 256 characters, so up to 1 KiB):
 * itself when both fit in MAX_KEY_BYTES, else `\u0001sha256:<hash>` (the value keeps the filter)
 */
export function topicKey(clientId: string, topic: string): string {
  const short = clientId.length + topic.length <= MAX_KEY_BYTES / 4 || Buffer.byteLength(clientId) + Buffer.byteLength(topic) <= MAX_KEY_BYTES
  return short ? topic : '\u0001sha256:' + topicHash(topic)
}

/** literal levels of a filter before its first wildcard, with a trailing '/'; '' when it starts with one */
export function literalPrefix(pattern: string): { prefix: string; wildcardAt: number } {
  const plus = pattern.indexOf('+')
  const hash = pattern.indexOf('#')
  const at = plus === -1 ? hash : hash === -1 ? plus : Math.min(plus, hash)
  if (at === -1) return { prefix: pattern, wildcardAt: -1 }
  return { prefix: pattern.slice(0, at), wildcardAt: at }
}
