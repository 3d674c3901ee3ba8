import type { ListenerConfig } from '../config/types.js'
import { SocketListener, type SocketListenerDeps } from './socket-listener.js'
import { WsListener } from './ws-listener.js'
import type { Listener } from './types.js'

export function createListener(spec: ListenerConfig, deps: SocketListenerDeps & { maxPacketBytes: number }): Listener {
  return spec.type === 'ws' || spec.type === 'wss' ? new WsListener(spec, deps) : new SocketListener(spec, deps)
}

export { Admission } from './admission.js'
export { ParserGuard, type GuardableParser } from './packet-size.js'
export type * from './types.js'
