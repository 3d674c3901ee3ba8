/** Three base64url segments, the first one a JSON object (`eyJ`): a compact JWS/JWT. */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/
const MAX_USERNAME = 256

/**
 * The CONNECT username as it may be journaled and logged. It plays no part in authentication,
 * but some firmware puts the token there too: a username equal to the password or holding
 * something token-shaped is replaced, and long ones are cut.
 */
export function journalUsername(username: string | undefined, password: Buffer | undefined): string | undefined {
  if (username === undefined || username === '') return username
  if (password && password.length > 0 && password.toString('latin1') === username) return '[password]'
  if (JWT_LIKE.test(username)) return '[token]'
  return username.length > MAX_USERNAME ? username.slice(0, MAX_USERNAME) + '…' : username
}
