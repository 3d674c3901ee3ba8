import '../broker/quiet-debug.js'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import mqtt, { Store, type IClientOptions, type IPublishPacket, type MqttClient, type PacketCallback } from 'mqtt'
import type { UpstreamConfig } from '../config/types.js'
import type { Clock } from '../clock.js'
import type { Logger } from '../logger.js'
import type { Journal } from '../journal/types.js'
import { ewError } from '../errors.js'
import { Backoff } from './backoff.js'
import { matchTopic } from './topic.js'

export type LinkState = 'connecting' | 'up' | 'down' | 'stopped'

/** What /healthz and $warden/status show of the link: never a credential. */
export interface LinkStatus {
  readonly state: LinkState
  readonly url: string
  readonly clientId: string
  /** when the link entered this state (ISO time) */
  readonly since: string
  readonly lastError?: string
  readonly attempts: number
  readonly nextAttemptInMs?: number
}

export type MessageHandler = (topic: string, payload: Buffer, packet: { readonly qos: 0 | 1 | 2; readonly retain: boolean }) => void | Promise<void>

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export interface LinkOptions {
  readonly config: UpstreamConfig
  readonly gatewayId: string
  readonly logger: Logger
  readonly journal: Journal
  readonly clock: Clock
  /** jitter source, injectable for tests */
  readonly random?: () => number
  /** reconnect timers, injectable for tests */
  readonly timers?: Timers
  readonly connectTimeoutMs?: number
}

export type PublishCallback = (err?: Error) => void

interface Pending { cb: PublishCallback | undefined }

const realTimers: Timers = {
  setTimeout: (fn, ms) => { const h = setTimeout(fn, ms); h.unref(); return h },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/**
 * The gateway's one connection to the cloud broker (MQTT.js, mqtt/mqtts/ws/wss). It holds
 * the cloud credentials: the password is revealed only inside the connect options and is
 * scrubbed from anything the link reports. It reconnects with jittered exponential
 * backoff, journals `upstream_up` / `upstream_down` on transitions, and emits 'up' /
 * 'down'. Used by the bridge, the journal shipper and the fleet policy channel.
 */
export class UpstreamLink extends EventEmitter {
  readonly #o: LinkOptions
  readonly #log: Logger
  readonly #backoff: Backoff
  readonly #timers: Timers
  readonly #subs: { filter: string; qos: 0 | 1; handler: MessageHandler }[] = []
  readonly #displayUrl: string
  readonly clientId: string
  #client: MqttClient | undefined
  #pending = new Set<Pending>()
  #state: LinkState = 'down'
  #since: number
  #lastError: string | undefined
  #timer: unknown
  #nextAt: number | undefined
  #downJournaled = false
  #tls: Pick<IClientOptions, 'ca' | 'cert' | 'key'> = {}
  #started = false
  #generation = 0

  constructor(o: LinkOptions) {
    super()
    this.#o = o
    this.#log = o.logger.child({ stage: 'upstream' })
    this.#backoff = new Backoff(o.config.reconnect.minMs, o.config.reconnect.maxMs, o.random)
    this.#timers = o.timers ?? realTimers
    this.#displayUrl = displayUrl(o.config.url)
    this.clientId = o.config.clientId ?? o.gatewayId
    this.#since = o.clock.now()
  }

  get connected(): boolean { return this.#state === 'up' }
  /** counts connections: a callback can tell whether the connection it used is still the one up */
  get generation(): number { return this.#generation }
  get state(): LinkState { return this.#state }
  /** the current connection's MQTT.js client, if any: for tests, which look at what it keeps (publish through send()/publish(), never on it directly) */
  get client(): MqttClient | undefined { return this.#client }

  status(): LinkStatus {
    return {
      state: this.#state,
      url: this.#displayUrl,
      clientId: this.clientId,
      since: new Date(this.#since).toISOString(),
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
      attempts: this.#backoff.attempt,
      ...(this.#nextAt !== undefined && this.#state === 'down' ? { nextAttemptInMs: Math.max(0, this.#nextAt - this.#o.clock.now()) } : {}),
    }
  }

  /** Reads the TLS files (a missing file is a config error) and starts connecting. */
  start(): void {
    if (this.#started) return
    const c = this.#o.config
    const read = (key: 'ca' | 'cert' | 'key'): Buffer | undefined => {
      const path = c[key]
      if (!path) return undefined
      try {
        return readFileSync(path)
      } catch {
        throw ewError('EW_CONFIG_NOT_FOUND', `upstream.${key}: cannot read ${path}`, { key: `upstream.${key}`, path })
      }
    }
    this.#tls = { ca: read('ca'), cert: read('cert'), key: read('key') }
    this.#started = true
    this.#connect()
  }

  /**
   * Subscribes on the cloud now (when up) and after every reconnect. The cloud's QoS 1
   * delivery is acknowledged once `handler` has finished (or failed: a handler error is
   * logged, never redelivered forever).
   */
  subscribe(filter: string, qos: 0 | 1, handler: MessageHandler): void {
    this.#subs.push({ filter, qos, handler })
    // after the CONNACK (up, or still subscribing the others): subscribe on this connection now
    if (this.#client?.connected) this.#client.subscribe(filter, { qos }, (err) => this.#subscribed(filter, err))
  }

  /** Publishes to the cloud; resolves when the cloud acknowledged it (QoS 1) or it was written (QoS 0). */
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    return new Promise((resolve, reject) => this.send(topic, payload, opts.qos, opts.retain ?? false, (err) => (err ? reject(err) : resolve())))
  }

  /** Callback form of publish(), for the bridge's drain loop. The callback runs exactly once. */
  send(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean, cb: PublishCallback): void {
    const c = this.#client
    if (!c || this.#state !== 'up') return cb(ewError('EW_UPSTREAM_UNAVAILABLE', 'upstream is not connected'))
    const p: Pending = { cb }
    this.#pending.add(p)
    c.publish(topic, payload, { qos, retain }, (err) => {
      const done = p.cb
      if (!done) return
      p.cb = undefined
      this.#pending.delete(p)
      done(err ? ewError('EW_UPSTREAM_UNAVAILABLE', `upstream publish failed: ${this.#scrub(err.message)}`) : undefined)
    })
  }

  /** Closes the connection; publishes still waiting for an acknowledgement fail. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return
    const wasUp = this.#state === 'up'
    this.#setState('stopped')
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer)
    this.#timer = undefined
    const c = this.#client
    this.#client = undefined
    this.#failPending('upstream link stopped')
    if (c) await new Promise<void>((resolve) => c.end(true, {}, () => resolve()))
    if (wasUp) this.#journalDown('stopped')
  }

  #connect(): void {
    if (this.#state === 'stopped') return
    this.#timer = undefined
    this.#nextAt = undefined
    this.#setState('connecting')
    const cfg = this.#o.config
    let client: MqttClient
    try {
      client = this.#open(cfg)
    } catch (err) {
      // MQTT.js throws for some bad options: a failed attempt like any other, never a crash in a timer
      this.#lastError = this.#describe(err as Error)
      this.#client = undefined
      this.#setState('down')
      if (!this.#downJournaled) this.#journalDown(this.#lastError)
      this.#retry(this.#lastError)
      return
    }
    this.#client = client
    skipStoreCopy(client)
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      this.#dispatch(packet).then(() => done(), () => done())
    }
    this.#wire(client)
  }

  #open(cfg: UpstreamConfig): MqttClient {
    return mqtt.connect(cfg.url, {
      clientId: this.clientId,
      username: cfg.username,
      // the one place the cloud password is revealed
      password: cfg.password?.reveal(),
      ...this.#tls,
      rejectUnauthorized: cfg.rejectUnauthorized,
      keepalive: cfg.keepaliveSec,
      // MQTT.js would reset its keepalive timer (a clearTimeout and a setTimeout) for every
      // PUBACK received, ~0.8 µs a bridged message: #wire does it at most once a second
      reschedulePings: false,
      // a persistent session: the cloud keeps our subscriptions and queues commands while we are away
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      outgoingStore: new KeepNothing(),
      // MQTT.js calls its debug logger several times per publish: unless DEBUG names
      // mqttjs:client at start, src/broker/quiet-debug.ts makes it an empty function
    })
  }

  #wire(client: MqttClient): void {
    // traffic from the cloud shows the link alive, as MQTT.js' own rescheduling has it (a PINGREQ
    // queued behind a full window on a slow uplink could otherwise miss its deadline)
    let rescheduled = 0
    client.on('packetreceive', () => {
      const now = Date.now()
      if (now - rescheduled < 1000) return
      rescheduled = now
      client.reschedulePing(true)
    })
    client.on('connect', () => {
      if (this.#client !== client) return
      this.#generation++
      this.#lastError = undefined
      this.#backoff.reset()
      let left = this.#subs.length
      const ready = (): void => {
        if (this.#client !== client || this.#state !== 'connecting') return
        this.#setState('up')
        this.#downJournaled = false
        this.#o.journal.record({ type: 'upstream_up', reason: 'connected', clientId: this.clientId, upstream: this.#displayUrl })
        this.#log.info({ event: 'upstream_up', url: this.#displayUrl, clientId: this.clientId }, 'connected to the cloud broker')
        this.emit('up')
      }
      if (left === 0) return ready()
      for (const s of this.#subs) {
        client.subscribe(s.filter, { qos: s.qos }, (err) => {
          this.#subscribed(s.filter, err)
          if (--left === 0) ready()
        })
      }
    })
    client.on('error', (err: Error & { code?: number | string }) => {
      if (this.#client !== client) return
      this.#lastError = this.#describe(err)
    })
    client.on('close', () => {
      if (this.#client !== client) return
      this.#client = undefined
      client.end(true)
      const wasUp = this.#state === 'up'
      // down before failing the pending publishes: their callbacks must see the link gone
      this.#setState('down')
      this.#failPending('upstream connection lost')
      const reason = this.#lastError ?? 'connection closed'
      if (wasUp || !this.#downJournaled) this.#journalDown(reason)
      if (wasUp) this.emit('down', reason)
      this.#retry(reason)
    })
  }

  #retry(reason: string): void {
    const delay = this.#backoff.next()
    this.#nextAt = this.#o.clock.now() + delay
    // attempts 1, 2, 4, 8…: a long outage stays visible without a log line per retry
    const attempt = this.#backoff.attempt
    const level = (attempt & (attempt - 1)) === 0 ? 'warn' : 'debug'
    this.#log[level]({ event: 'upstream_retry', url: this.#displayUrl, reason, attempt, delayMs: delay }, `cloud broker unreachable (${reason}); retrying in ${delay} ms`)
    this.#timer = this.#timers.setTimeout(() => this.#connect(), delay)
  }

  #journalDown(reason: string): void {
    this.#downJournaled = true
    this.#o.journal.record({ type: 'upstream_down', reason, clientId: this.clientId, upstream: this.#displayUrl })
  }

  #setState(s: LinkState): void {
    if (s !== this.#state) this.#since = this.#o.clock.now()
    this.#state = s
  }

  #subscribed(filter: string, err: Error | null | undefined): void {
    if (err) this.#log.error({ event: 'upstream_subscribe_failed', filter, err: this.#scrub(err.message) }, 'the cloud broker refused a subscription')
  }

  async #dispatch(packet: IPublishPacket): Promise<void> {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength)
    for (const s of this.#subs) {
      if (!matchTopic(s.filter, packet.topic)) continue
      try {
        await s.handler(packet.topic, payload, { qos: packet.qos, retain: packet.retain })
      } catch (err) {
        this.#log.error({ event: 'upstream_handler_failed', filter: s.filter, err: this.#scrub((err as Error).message) }, 'handling a message from the cloud failed')
      }
    }
  }

  #failPending(why: string): void {
    const pending = this.#pending
    this.#pending = new Set()
    for (const p of pending) {
      const cb = p.cb
      p.cb = undefined
      cb?.(ewError('EW_UPSTREAM_UNAVAILABLE', why))
    }
  }

  /** A connection error as an operator reads it, never carrying a credential. */
  #describe(err: Error & { code?: number | string }): string {
    if (typeof err.code === 'number') {
      const why = CONNACK[err.code] ?? `CONNACK ${err.code}`
      return `refused by the cloud broker: ${why} (CONNACK ${err.code})`
    }
    return this.#scrub(err.message).slice(0, 200)
  }

  /** last line of defence: library messages should never hold the password, but make sure */
  #scrub(text: string): string {
    const pw = this.#o.config.password?.reveal()
    let out = pw && pw.length >= 4 ? text.split(pw).join('[secret]') : text
    if (out.includes('@')) out = out.replace(/(\w+:\/\/)[^/@\s]*@/g, '$1')
    return out
  }
}

const CONNACK: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
}

/** the URL without any user:password part */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//')
  }
}

/**
 * The link's clients' outgoing store: it keeps nothing. MQTT.js keeps each unacknowledged QoS 1
 * publish there to send it again when the same client reconnects; the link makes a new client
 * for every connection (reconnectPeriod 0) and fails what was pending when one closes, and the
 * outbox sends that again: nothing put here would ever be read back. An acknowledged publish's
 * removal must still succeed (MQTT.js passes the store's error to the publish's callback).
 */
export class KeepNothing extends Store {
  /** set by skipStoreCopy: put() is then reached only by a publish made while the client is not connected */
  sendsDirect = false

  override put(_packet: Parameters<Store['put']>[0], cb: (err?: Error) => void): this {
    // offline, MQTT.js would keep the publish here for the connection to come and call back only
    // once that acknowledged it: kept nowhere, it would hang. The link publishes only while up, so
    // this is a misuse: fail it at once. Without skipStoreCopy every publish comes through here
    // on its way out, and goes on.
    if (this.sendsDirect) cb?.(new Error('upstream client not connected: a publish is not kept for a later connection'))
    else cb?.()
    return this
  }

  override del(packet: Parameters<Store['del']>[0], cb: PacketCallback): this {
    cb(undefined, packet as Parameters<PacketCallback>[1])
    return this
  }
}

/**
 * MQTT.js deep-copies every QoS 1 publish, payload included, before putting it into the
 * outgoing store (`_storeAndSend`); with KeepNothing the copy is thrown away at once, so this
 * client writes the packet without making it (~1 µs and ~0.4 KiB a bridged message). A private
 * method of MQTT.js 5: replaced only where it is there, and test/bridge/link.test.ts fails
 * when it is gone, so an upgrade is looked at; without it the link works as before.
 */
export function skipStoreCopy(client: MqttClient): boolean {
  const c = client as unknown as { _storeAndSend?: unknown; _writePacket?: (packet: unknown, cb?: unknown) => void; outgoingStore?: unknown }
  if (typeof c._storeAndSend !== 'function' || typeof c._writePacket !== 'function' || !(c.outgoingStore instanceof KeepNothing)) return false
  c.outgoingStore.sendsDirect = true
  c._storeAndSend = function (this: typeof c, packet: unknown, cb: unknown, cbStorePut: () => void): void {
    cbStorePut()
    this._writePacket!(packet, cb)
  }
  return true
}
