/**
 * Errors are values with stable codes, made by one factory and listed in one table
 * (docs/errors.md mirrors it). Messages never carry secret values.
 */
export const ERROR_CODES = {
  EW_CONFIG_INVALID: { exit: 2, summary: 'the configuration file or environment is invalid' },
  EW_CONFIG_NOT_FOUND: { exit: 2, summary: 'a file named by the configuration does not exist' },
  EW_USAGE: { exit: 2, summary: 'bad command-line usage' },
  EW_POLICY_INVALID: { exit: 2, summary: 'a policy file is invalid' },
  EW_TOKEN_MISSING: { exit: 1, summary: 'no token in the CONNECT password' },
  EW_TOKEN_MALFORMED: { exit: 1, summary: 'the token is not a compact JWS' },
  EW_TOKEN_TOO_LARGE: { exit: 1, summary: 'the token is larger than the 8 KiB limit' },
  EW_TOKEN_ALG: { exit: 1, summary: 'the token algorithm is not allowed' },
  EW_TOKEN_KID_UNKNOWN: { exit: 1, summary: 'no key matches the token kid' },
  EW_TOKEN_SIGNATURE: { exit: 1, summary: 'the token signature does not verify' },
  EW_TOKEN_EXPIRED: { exit: 1, summary: 'the token has expired' },
  EW_TOKEN_NOT_YET_VALID: { exit: 1, summary: 'the token is not valid yet (nbf)' },
  EW_TOKEN_CLAIMS: { exit: 1, summary: 'a required claim is missing or wrong (sub, exp, iss, aud)' },
  EW_CLIENT_ID_MISMATCH: { exit: 1, summary: 'the CONNECT clientId is not the one the token binds' },
  EW_CLIENT_ID_REQUIRED: { exit: 1, summary: 'empty clientId with clean session 0' },
  EW_CLIENT_ID_TOO_LONG: { exit: 1, summary: 'the CONNECT clientId is longer than 256 characters' },
  EW_USERNAME_TOO_LONG: { exit: 1, summary: 'the CONNECT username is longer than 1 KiB' },
  EW_KEYS_UNAVAILABLE: { exit: 1, summary: 'no verification key could be loaded' },
  EW_LISTEN_FAILED: { exit: 1, summary: 'a listener could not bind its port' },
  EW_UPSTREAM_UNAVAILABLE: { exit: 1, summary: 'the cloud broker is not connected, or the connection dropped before it acknowledged' },
  EW_CLUSTER_UNAVAILABLE: { exit: 1, summary: 'the site cluster\'s Redis (broker.cluster.redis) cannot be reached' },
  EW_INTERNAL: { exit: 1, summary: 'unexpected internal error' },
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export class EwError extends Error {
  readonly code: ErrorCode
  readonly exitCode: number
  readonly details: Readonly<Record<string, unknown>>
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'EwError'
    this.code = code
    this.exitCode = ERROR_CODES[code].exit
    this.details = Object.freeze({ ...details })
  }
}

export function ewError(code: ErrorCode, message: string, details?: Record<string, unknown>): EwError {
  return new EwError(code, message, details)
}

export function isEwError(err: unknown): err is EwError {
  return err instanceof EwError
}
