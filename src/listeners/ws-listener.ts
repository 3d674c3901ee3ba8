import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws'
import type { ListenerConfig } from '../config/types.js'
import { peerSubject, tlsOptions } from './tls-options.js'
import type { ConnectionMeta, Listener } from './types.js'
import type { SocketListenerDeps } from './socket-listener.js'
import { bindServer, boundAddress, stopServer } from './bind.js'


/** MQTT over WebSocket (`ws`) and secure WebSocket (`wss`), with ws 8's createWebSocketStream. */
export class WsListener implements Listener {
  /** `type:port`, with the bound port once listening (port 0 picks one) */
  name: string
  readonly #http: Server
  readonly #wss: WebSocketServer
  readonly #sockets = new Set<Socket>()
  /** every socket's close listener, shared (`this` is the socket): no closure and once-wrapper per connection */
  readonly #onClose: (this: Socket) => void

  constructor(readonly spec: ListenerConfig, private readonly deps: SocketListenerDeps & { readonly maxPacketBytes: number }) {
    this.name = `${spec.type}:${spec.port}`
    const sockets = this.#sockets
    this.#onClose = function (this: Socket): void {
      sockets.delete(this)
      deps.admission.release()
    }
    // a socket that never completes its upgrade is closed after the CONNECT timeout; Node only
    // checks these timeouts every connectionsCheckingInterval (30 s by default)
    const timeouts = { headersTimeout: deps.connectTimeoutMs, requestTimeout: deps.connectTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(deps.connectTimeoutMs / 2, 5000)) }
    this.#http = spec.type === 'wss' ? createHttpsServer({ ...tlsOptions(spec, deps.connectTimeoutMs), ...timeouts }) : createHttpServer(timeouts)
    this.#http.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' })
      res.end('MQTT over WebSocket: connect with a WebSocket client to ' + spec.path + '\n')
    })
    // admission on the raw TCP socket (before TLS and HTTP): limits apply to sockets that never upgrade too
    this.#http.on('connection', (s: Socket) => {
      const refused = this.deps.admission.admit(s.remoteAddress ?? '')
      if (refused) {
        s.destroy()
        this.deps.onRefused(this.#meta(s), refused)
        return
      }
      s.setNoDelay(true)
      this.#sockets.add(s)
      s.on('close', this.#onClose)
    })
    this.#http.on('clientError', (_err, s: Socket) => s.destroy())
    if (spec.type === 'wss') {
      this.#http.on('tlsClientError', (err: NodeJS.ErrnoException, s: TLSSocket) => {
        s.destroy()
        this.deps.onRefused(this.#meta(s), 'tls_handshake', err.code)
      })
    }
    this.#wss = new WebSocketServer({
      noServer: true,
      // an MQTT packet rides in one or more frames; a frame above the packet limit is refused by ws
      maxPayload: deps.maxPacketBytes + 16,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    })
    this.#http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade(req, socket, head))
  }

  #meta(socket: Socket): ConnectionMeta {
    const cert = this.spec.type === 'wss' ? peerSubject(socket as TLSSocket) : {}
    return { listener: this.name, transport: this.spec.type, remoteAddress: socket.remoteAddress ?? '', ...cert }
  }

  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const meta = this.#meta(socket)
    const path = (req.url ?? '/').split('?')[0]
    if (path !== this.spec.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      this.deps.onRefused(meta, 'bad_path')
      return
    }
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const stream = createWebSocketStream(ws)
      stream.on('error', () => stream.destroy())
      this.deps.onConnection(stream, meta, req)
    })
  }

  async listen(): Promise<void> {
    this.name = await bindServer(this.#http, this.spec, this.name)
  }

  stopAccepting(): Promise<void> {
    return stopServer(this.#http)
  }

  destroyAll(): void {
    for (const c of this.#wss.clients) c.terminate()
    for (const s of this.#sockets) s.destroy()
  }

  address(): { host: string; port: number } {
    return boundAddress(this.#http, this.spec)
  }

}
