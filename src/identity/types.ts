import type { ErrorCode } from '../errors.js'

export type IdentityKind = 'device' | 'service' | 'agent' | 'human'
export const IDENTITY_KINDS: readonly IdentityKind[] = ['device', 'service', 'agent', 'human']

/** Who is on the other end of a connection, as proven by its token. */
export interface Identity {
  readonly sub: string
  /** the MQTT clientId the session runs under (bound by the token under strict binding) */
  readonly clientId: string
  readonly groups: readonly string[]
  readonly kind: IdentityKind
  /** every claim of the token, plus cert_subject / cert_cn from a TLS client certificate */
  readonly claims: Readonly<Record<string, unknown>>
  /** token expiry, ms since epoch; undefined when the token has none and requireExp is off */
  readonly exp?: number
  readonly listener: string
  readonly remoteAddress?: string
  /** CONNECT username: plays no part in authentication, journaled for forensics */
  readonly username?: string
}

/** Why a CONNECT was refused; the token itself is never part of it. */
export type AuthReason =
  | 'missing_token' | 'token_too_large' | 'malformed' | 'alg_not_allowed' | 'unknown_kid'
  | 'bad_signature' | 'expired' | 'not_yet_valid' | 'missing_exp' | 'bad_issuer' | 'bad_audience'
  | 'missing_sub' | 'bad_claims' | 'client_id_mismatch' | 'client_id_required' | 'keys_unavailable'
  | 'client_id_too_long' | 'username_too_long'

export const AUTH_REASON_CODES: Record<AuthReason, ErrorCode> = {
  missing_token: 'EW_TOKEN_MISSING',
  token_too_large: 'EW_TOKEN_TOO_LARGE',
  malformed: 'EW_TOKEN_MALFORMED',
  alg_not_allowed: 'EW_TOKEN_ALG',
  unknown_kid: 'EW_TOKEN_KID_UNKNOWN',
  bad_signature: 'EW_TOKEN_SIGNATURE',
  expired: 'EW_TOKEN_EXPIRED',
  not_yet_valid: 'EW_TOKEN_NOT_YET_VALID',
  missing_exp: 'EW_TOKEN_CLAIMS',
  bad_issuer: 'EW_TOKEN_CLAIMS',
  bad_audience: 'EW_TOKEN_CLAIMS',
  missing_sub: 'EW_TOKEN_CLAIMS',
  bad_claims: 'EW_TOKEN_CLAIMS',
  client_id_mismatch: 'EW_CLIENT_ID_MISMATCH',
  client_id_required: 'EW_CLIENT_ID_REQUIRED',
  keys_unavailable: 'EW_KEYS_UNAVAILABLE',
  client_id_too_long: 'EW_CLIENT_ID_TOO_LONG',
  username_too_long: 'EW_USERNAME_TOO_LONG',
}

export interface AuthFailure {
  readonly reason: AuthReason
  readonly code: ErrorCode
  /** CONNACK return code: 4 bad credentials, 2 identifier rejected, 3 server unavailable */
  readonly connack: 2 | 3 | 4 | 5
  /** the sub, when the token was valid but refused for another reason */
  readonly sub?: string
  readonly detail?: string
}

export type AuthResult = { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly failure: AuthFailure }

/** What the listener and CONNECT packet tell about a connection attempt. */
export interface ConnectAttempt {
  readonly clientId: string
  readonly clean: boolean
  readonly username?: string
  readonly password?: Buffer
  readonly listener: string
  readonly remoteAddress?: string
  readonly certSubject?: string
  readonly certCN?: string
}

export function authFailure(reason: AuthReason, extra: { sub?: string; detail?: string } = {}): AuthFailure {
  const connack = reason === 'client_id_required' || reason === 'client_id_too_long' ? 2 : reason === 'keys_unavailable' ? 3 : 4
  return { reason, code: AUTH_REASON_CODES[reason], connack, ...extra }
}
