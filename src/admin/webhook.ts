import { createHmac } from 'node:crypto'
import type { Logger } from '../logger.js'
import type { Secret } from '../config/secret.js'

export interface WebhookOptions {
  readonly url: string
  readonly secret?: Secret
  readonly retries: number
  readonly logger: Logger
  /** first retry delay; doubles each time */
  readonly baseDelayMs?: number
}

/**
 * POSTs approval events as JSON. With a secret, `x-edgewarden-signature: sha256=<hex>` is an
 * HMAC-SHA256 of the exact body, so the receiver can check origin and integrity.
 * Retries with exponential backoff; never throws into the caller.
 */
export function createWebhook(o: WebhookOptions): (event: object) => void {
  return (event) => {
    const body = JSON.stringify(event)
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'edgewarden' }
    if (o.secret) headers['x-edgewarden-signature'] = 'sha256=' + createHmac('sha256', o.secret.reveal()).update(body).digest('hex')
    void (async () => {
      let delay = o.baseDelayMs ?? 500
      for (let attempt = 0; attempt <= o.retries; attempt++) {
        try {
          const res = await fetch(o.url, { method: 'POST', body, headers, signal: AbortSignal.timeout(5000) })
          if (res.ok) return
          if (res.status < 500 && res.status !== 429) break
        } catch {
          // network error: retry
        }
        if (attempt < o.retries) {
          await new Promise((r) => setTimeout(r, delay).unref())
          delay *= 2
        }
      }
      o.logger.warn({ event: 'webhook_failed', attempts: o.retries + 1 }, 'approval webhook not delivered')
    })()
  }
}
