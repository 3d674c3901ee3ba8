import mqemitter from 'mqemitter'
import fastparallel from 'fastparallel'

/** Synchronous drains in a row before the next one waits for a fresh tick. */
const MAX_SYNC_DRAINS = 64

interface Internals {
  _released: () => void
  _parallel: unknown
}

/**
 * Aedes' message router (mqemitter 7) with its queue drain made iterative. mqemitter drains
 * messages queued past `concurrency` by recursion: each finished delivery releases the next
 * queued message on the same stack, so a few thousand queued messages (a flood, or a
 * subscriber that leaves while publishers go on) end in "Maximum call stack size exceeded"
 * and the whole broker dies. Here, after MAX_SYNC_DRAINS nested releases the next one is
 * deferred to setImmediate: same order, bounded stack.
 */
export function createEmitter(concurrency = 100): ReturnType<typeof mqemitter> {
  const mq = mqemitter({ concurrency, matchEmptyLevels: true /* [MQTT-4.7.1-3], as Aedes' default */ })
  const m = mq as unknown as Internals
  const release = m._released
  let depth = 0
  const released = (): void => {
    if (depth >= MAX_SYNC_DRAINS) {
      setImmediate(released)
      return
    }
    depth++
    try {
      release()
    } finally {
      depth--
    }
  }
  m._released = released
  m._parallel = fastparallel({ results: false, released })
  return mq
}
