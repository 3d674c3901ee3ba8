import { readFileSync } from 'node:fs'
import type { TlsOptions, TLSSocket } from 'node:tls'
import type { ListenerConfig } from '../config/types.js'
import { ewError } from '../errors.js'

export function tlsOptions(spec: ListenerConfig, connectTimeoutMs: number): TlsOptions {
  const read = (key: 'cert' | 'key' | 'ca'): Buffer | undefined => {
    const path = spec[key]
    if (!path) return undefined
    try {
      return readFileSync(path)
    } catch (err) {
      throw ewError('EW_CONFIG_INVALID', `listeners[${spec.type}:${spec.port}].${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { key })
    }
  }
  return {
    cert: read('cert'),
    key: read('key'),
    ca: read('ca'),
    passphrase: spec.passphrase?.reveal(),
    requestCert: spec.requestCert,
    rejectUnauthorized: spec.requestCert ? spec.rejectUnauthorized : false,
    minVersion: 'TLSv1.2',
    handshakeTimeout: connectTimeoutMs,
  }
}

/** Subject of a verified client certificate, offered to policy as claims cert_subject / cert_cn. */
export function peerSubject(socket: TLSSocket): { certSubject?: string; certCN?: string } {
  if (!socket.authorized) return {}
  const cert = socket.getPeerCertificate()
  if (!cert || !cert.subject) return {}
  const subject = Object.entries(cert.subject).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(',')
  const cn = cert.subject.CN
  return { certSubject: subject, certCN: Array.isArray(cn) ? cn[0] : cn }
}
