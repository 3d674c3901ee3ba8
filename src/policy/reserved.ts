/** `$SYS/` and `$warden/` are reachable only when a rule names them (SPEC §6). */
export function isReservedTopic(topic: string): boolean {
  return topic.charCodeAt(0) === 36 /* $ */ && (topic.startsWith('$SYS') || topic.startsWith('$warden'))
}
