import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ewError } from '../errors.js'

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: Readonly<Record<string, string>>) => void | Promise<void>

interface Route { method: string; parts: string[]; handler: RouteHandler }

/**
 * The admin HTTP surface (/healthz, /metrics, /api/…, console). Other stages register
 * routes; handlers that throw answer 500 without the error text, which could carry input.
 */
export class AdminServer {
  readonly #server: Server
  readonly #routes: Route[] = []

  /** told about handler failures (the client only sees a 500) */
  onError: ((err: Error, route: string) => void) | undefined

  constructor(private readonly host: string, private readonly port: number) {
    this.#server = createServer((req, res) => void this.#dispatch(req, res))
    this.#server.headersTimeout = 10_000
    this.#server.requestTimeout = 30_000
  }

  route(method: string, path: string, handler: RouteHandler): void {
    this.#routes.push({ method, parts: path.split('/').filter(Boolean), handler })
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin')
    const parts = url.pathname.split('/').filter(Boolean)
    let pathMatched = false
    for (const r of this.#routes) {
      const params = match(r.parts, parts)
      if (!params) continue
      pathMatched = true
      if (r.method !== req.method && !(r.method === 'GET' && req.method === 'HEAD')) continue
      try {
        await r.handler(req, res, params)
      } catch (err) {
        this.onError?.(err as Error, `${req.method} ${url.pathname}`)
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
        else res.destroy()
      }
      return
    }
    sendJson(res, pathMatched ? 405 : 404, { error: pathMatched ? 'method not allowed' : 'not found' })
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(ewError('EW_LISTEN_FAILED', `admin: cannot listen on ${this.host}:${this.port} (${err.code ?? err.message})`))
      this.#server.once('error', onError)
      this.#server.listen(this.port, this.host, () => {
        this.#server.off('error', onError)
        resolve()
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve()
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  address(): { host: string; port: number } {
    const a = this.#server.address() as AddressInfo | null
    return { host: a?.address ?? this.host, port: a?.port ?? this.port }
  }
}

function match(route: string[], parts: string[]): Record<string, string> | undefined {
  if (route.length !== parts.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < route.length; i++) {
    const r = route[i]!
    if (r.startsWith(':')) params[r.slice(1)] = decodeURIComponent(parts[i]!)
    else if (r !== parts[i]) return undefined
  }
  return params
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/** Reads a JSON request body of at most `max` bytes. */
export async function readJson(req: IncomingMessage, max = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > max) throw ewError('EW_USAGE', 'request body too large')
    chunks.push(c as Buffer)
  }
  return size === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'))
}
