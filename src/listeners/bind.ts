import type { Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { ListenerConfig } from '../config/types.js'
import { ewError } from '../errors.js'

/** a reconnect storm (a site's devices after a power cut) overflows Node's default backlog of 511 */
const LISTEN_BACKLOG = 4096

/** Binds a listener's server; resolves with its `type:port` name (port 0 picks one). */
export function bindServer(server: Server, spec: ListenerConfig, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(ewError('EW_LISTEN_FAILED', `${name}: cannot listen on ${spec.host}:${spec.port} (${err.code ?? err.message})`))
    server.once('error', onError)
    server.listen({ port: spec.port, host: spec.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError)
      resolve(`${spec.type}:${boundAddress(server, spec).port}`)
    })
  })
}

/**
 * Stops accepting. close() calls back only when every open connection has ended: waiting
 * for that here would hang shutdown while clients are connected.
 */
export function stopServer(server: Server): Promise<void> {
  if (server.listening) server.close()
  return new Promise((resolve) => setImmediate(resolve))
}

export function boundAddress(server: Server, spec: ListenerConfig): { host: string; port: number } {
  const a = server.address() as AddressInfo | null
  return { host: a?.address ?? spec.host, port: a?.port ?? spec.port }
}
