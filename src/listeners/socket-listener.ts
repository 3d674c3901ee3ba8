import { createServer as createTcpServer, type Server, type Socket, type AddressInfo } from 'node:net'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { ListenerConfig } from '../config/types.js'
import { ewError } from '../errors.js'
import type { Admission } from './admission.js'
import { peerSubject, tlsOptions } from './tls-options.js'
import type { ConnectionHandler, ConnectionMeta, Listener, RefusalHandler } from './types.js'

export interface SocketListenerDeps {
  readonly admission: Admission
  readonly onConnection: ConnectionHandler
  readonly onRefused: RefusalHandler
  readonly connectTimeoutMs: number
}

const LISTEN_BACKLOG = 4096

/** MQTT over TCP (`mqtt`) and TLS (`mqtts`). */
export class SocketListener implements Listener {
  /** `type:port`, with the bound port once listening (port 0 picks one) */
  name: string
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  constructor(readonly spec: ListenerConfig, private readonly deps: SocketListenerDeps) {
    this.name = `${spec.type}:${spec.port}`
    if (spec.type === 'mqtts') {
      this.#server = createTlsServer(tlsOptions(spec, deps.connectTimeoutMs))
      this.#server.on('secureConnection', (s: TLSSocket) => {
        s.on('error', () => s.destroy())
        this.deps.onConnection(s, this.#meta(s, peerSubject(s)))
      })
      this.#server.on('tlsClientError', (err: NodeJS.ErrnoException, s: TLSSocket) => {
        s.destroy()
        this.deps.onRefused(this.#meta(s, {}), 'tls_handshake', err.code)
      })
    } else {
      this.#server = createTcpServer()
    }
    // admission on the raw TCP socket: limits apply before a TLS handshake is paid for
    this.#server.on('connection', (s: Socket) => this.#admit(s))
  }

  #meta(socket: Socket, cert: { certSubject?: string; certCN?: string }): ConnectionMeta {
    return { listener: this.name, transport: this.spec.type, remoteAddress: socket.remoteAddress ?? '', ...cert }
  }

  #admit(socket: Socket): void {
    const refused = this.deps.admission.admit(socket.remoteAddress ?? '')
    if (refused) {
      socket.destroy()
      this.deps.onRefused(this.#meta(socket, {}), refused)
      return
    }
    // Aedes never disables Nagle; without this p99 latency is ~25 ms instead of ~1 ms
    socket.setNoDelay(true)
    this.#sockets.add(socket)
    socket.once('close', () => {
      this.#sockets.delete(socket)
      this.deps.admission.release()
    })
    socket.on('error', () => socket.destroy())
    if (this.spec.type === 'mqtt') this.deps.onConnection(socket, this.#meta(socket, {}))
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(ewError('EW_LISTEN_FAILED', `${this.name}: cannot listen on ${this.spec.host}:${this.spec.port} (${err.code ?? err.message})`))
      this.#server.once('error', onError)
      // a reconnect storm (a site's devices after a power cut) overflows Node's default backlog of 511
      this.#server.listen({ port: this.spec.port, host: this.spec.host, backlog: LISTEN_BACKLOG }, () => {
        this.#server.off('error', onError)
        this.name = `${this.spec.type}:${this.address().port}`
        resolve()
      })
    })
  }

  stopAccepting(): Promise<void> {
    // close() stops accepting at once but calls back only when every open connection has
    // ended: waiting for that here would hang shutdown while clients are connected
    if (this.#server.listening) this.#server.close()
    return new Promise((resolve) => setImmediate(resolve))
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy()
  }

  address(): { host: string; port: number } {
    const a = this.#server.address() as AddressInfo | null
    return { host: a?.address ?? this.spec.host, port: a?.port ?? this.spec.port }
  }
}
