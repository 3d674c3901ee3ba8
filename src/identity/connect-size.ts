import { authFailure, type AuthFailure } from './types.js'

/** MQTT 3.1.1 lets a server accept long clientIds; UUIDs and subs fit in this */
export const MAX_CLIENT_ID = 256
/** usernames play no part in auth (SPEC §4); a kilobyte covers any firmware's habit */
export const MAX_USERNAME_BYTES = 1024

/**
 * CONNECT fields too large to be honest, refused before any token work (a flood of huge
 * CONNECTs must cost a length check, not a signature verification). Aedes 1.2 checks the
 * clientId length only for MQTT 3.1; the password has its own limit (auth.jwt.maxTokenBytes).
 */
export function oversizedConnect(clientId: string, username: string | undefined): AuthFailure | undefined {
  if (clientId.length > MAX_CLIENT_ID) return authFailure('client_id_too_long', { detail: `${clientId.length} characters` })
  // length first: a cheap bound before Buffer.byteLength walks a long string
  if (username !== undefined && username.length > MAX_USERNAME_BYTES / 4 && Buffer.byteLength(username) > MAX_USERNAME_BYTES) {
    return authFailure('username_too_long', { detail: `${Buffer.byteLength(username)} bytes` })
  }
  return undefined
}
