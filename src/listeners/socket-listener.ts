import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { ListenerConfig } from '../config/types.js'
import type { Admission } from './admission.js'
import { peerSubject, tlsOptions } from './tls-options.js'
import type { ConnectionHandler, ConnectionMeta, Listener, RefusalHandler } from './types.js'
import { bindServer, boundAddress, stopServer } from './bind.js'

export interface SocketListenerDeps {
  readonly admission: Admission
  readonly onConnection: ConnectionHandler
  readonly onRefused: RefusalHandler
  readonly connectTimeoutMs: number
}


function destroySocket(this: Socket): void { this.destroy() }

/** MQTT over TCP (`mqtt`) and TLS (`mqtts`). */
export class SocketListener implements Listener {
  /** `type:port`, with the bound port once listening (port 0 picks one) */
  name: string
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #onClose: (this: Socket) => void

  constructor(readonly spec: ListenerConfig, private readonly deps: SocketListenerDeps) {
    this.name = `${spec.type}:${spec.port}`
    const sockets = this.#sockets
    this.#onClose = function (this: Socket): void {
      sockets.delete(this)
      deps.admission.release()
    }
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
    // shared listeners (`this` is the socket): no closures kept per idle connection
    socket.on('close', this.#onClose)
    socket.on('error', destroySocket)
    if (this.spec.type === 'mqtt') this.deps.onConnection(socket, this.#meta(socket, {}))
  }

  async listen(): Promise<void> {
    this.name = await bindServer(this.#server, this.spec, this.name)
  }

  stopAccepting(): Promise<void> {
    return stopServer(this.#server)
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy()
  }

  address(): { host: string; port: number } {
    return boundAddress(this.#server, this.spec)
  }

}
