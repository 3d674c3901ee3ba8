// aedes-persistence-redis ships no types; only what the cluster uses. Its main entry is the
// callback wrapper: Aedes 1.2 wants the promise class (async setup), which is this file.
declare module 'aedes-persistence-redis/asyncPersistence.js' {
  import type { Redis } from 'ioredis'
  export interface RedisPersistenceOptions {
    /** an ioredis connection the persistence uses (and disconnects in destroy) */
    conn?: Redis
    /** queued messages a resumed session is sent at most (default 1000) */
    maxSessionDelivery?: number
    /** seconds a queued packet lives (0: forever) */
    packetTTL?: (packet: object) => number
  }
  export default class AsyncRedisPersistence {
    constructor(opts?: RedisPersistenceOptions)
    setup(broker: object): Promise<void>
    destroy(): Promise<void>
    createRetainedStream(pattern: string): AsyncIterable<object>
    createRetainedStreamCombi(patterns: string[]): AsyncIterable<object>
    outgoingStream(client: object): AsyncIterable<object>
    streamWill(brokers?: object): AsyncIterable<object>
    getClientList(topic: string): Iterable<string> | AsyncIterable<string>
    addSubscriptions(client: { id: string }, subs: ReadonlyArray<{ topic: string }>): Promise<void>
    removeSubscriptions(client: { id: string }, topics: readonly string[]): Promise<void>
    outgoingUpdate(client: { id: string }, packet: OutgoingPacket): Promise<void>
    outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<object | undefined>
  }
  /** a packet sent to a persistent session: a PUBLISH (numbered by its broker) or a PUBREL */
  export interface OutgoingPacket {
    cmd?: string
    messageId?: number
    brokerId?: string
    brokerCounter?: number | string
  }
}
