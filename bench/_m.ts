import { Packr, REUSE_BUFFER_MODE } from 'msgpackr'
import { createHash, hash } from 'node:crypto'
const packr = new Packr({ useRecords: false, mapsAsObjects: true })
const rec = { seq: 1, ts: Date.now(), gw: 'gw', type: 'publish', session: '5f0c6a1e-0d7b-4a4e-9a53-1c1f3c7e9b10', clientId: 'sensor-0042', sub: 'sensor-0042', kind: 'device', topic: 'site/1/dev/sensor-0042/telemetry', qos: 1, retain: false, bytes: 64, rule: 'sensors-own-telemetry', payload: Buffer.from('{"t":21.5,"h":40,"i":1,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxx"}'), prev: 'a'.repeat(64) }
const N = 100000
const time = (name: string, f: () => void) => { const t0 = performance.now(); for (let i = 0; i < N; i++) f(); console.log(name, (N / (performance.now() - t0)).toFixed(0), 'k/s') }
for (let r = 0; r < 2; r++) {
time('pack', () => packr.pack(rec))
time('pack reuse', () => packr.pack(rec, REUSE_BUFFER_MODE))
const body = packr.pack(rec)
const sc = Buffer.alloc(1000)
time('createHash', () => createHash('sha256').update(Buffer.from(rec.prev, 'hex')).update(body).digest('hex'))
time('hash oneshot', () => { sc.write(rec.prev, 0, 32, 'hex'); body.copy(sc, 32); hash('sha256', sc.subarray(0, 32 + body.length), 'hex') })
}
