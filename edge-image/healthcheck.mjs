// Container/systemd health probe: GET /healthz on the admin listener, exit 0 on 200.
// Reads the same variables as the gateway (EDGEWARDEN_ADMIN_HOST / _PORT); a wildcard
// bind address is probed on loopback.
import { request } from 'node:http'

const env = process.env
let host = env.EDGEWARDEN_ADMIN_HOST || '127.0.0.1'
if (host === '0.0.0.0') host = '127.0.0.1'
if (host === '::') host = '::1'
const port = Number(env.EDGEWARDEN_ADMIN_PORT || 9080)

const req = request({ host, port, path: '/healthz', method: 'GET', timeout: 4000 }, (res) => {
  res.resume()
  process.exitCode = res.statusCode === 200 ? 0 : 1
  if (res.statusCode !== 200) console.error(`healthz: HTTP ${res.statusCode}`)
})
req.on('timeout', () => req.destroy(new Error('timeout')))
req.on('error', (err) => {
  console.error(`healthz: ${err.message}`)
  process.exitCode = 1
})
req.end()
