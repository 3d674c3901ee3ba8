/**
 * MQTT 3.1.1 §1.5.3: topic strings are well-formed UTF-8 without U+0000; a server closes the
 * connection otherwise. mqtt-packet decodes invalid UTF-8 to U+FFFD without complaint, so a
 * U+FFFD is taken as a sign of invalid bytes (a topic that really names U+FFFD is refused too:
 * a small price for not re-reading the raw packet).
 */
export function malformedTopic(topic: string): boolean {
  return topic.includes('\uFFFD') || topic.includes('\u0000')
}
