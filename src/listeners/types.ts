import type { Duplex } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import type { ListenerConfig } from '../config/types.js'

/** What a listener knows about a connection before any MQTT byte is read. */
export interface ConnectionMeta {
  /** listener name, e.g. `mqtts:8883` */
  readonly listener: string
  readonly transport: ListenerConfig['type']
  readonly remoteAddress: string
  /** TLS client certificate subject (mqtts/wss with requestCert) */
  readonly certSubject?: string
  readonly certCN?: string
}

export type ConnectionHandler = (stream: Duplex, meta: ConnectionMeta, req?: IncomingMessage) => void

export type RefusalReason = 'max_connections' | 'connect_rate' | 'bad_path' | 'tls_handshake'
/** `detail`: a short error code (e.g. the TLS alert), never peer-supplied text */
export type RefusalHandler = (meta: ConnectionMeta, reason: RefusalReason, detail?: string) => void

export interface Listener {
  readonly spec: ListenerConfig
  readonly name: string
  listen(): Promise<void>
  /** stop accepting; open connections are left to the broker to close */
  stopAccepting(): Promise<void>
  /** destroy whatever is still open */
  destroyAll(): void
  address(): { host: string; port: number }
}
