import t from 'tap'
import { Packr, Unpackr } from 'msgpackr'
import { decodeMsgpack, encodeMsgpack, OpaqueExt, sniff } from '../../src/mask/codecs.js'
import { parsePath } from '../../src/mask/path.js'
import { KEY, maskJson, plan } from './helpers.js'

const packr = new Packr({ useRecords: false, mapsAsObjects: false })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false })

t.test('field actions', async (t) => {
  const doc = { owner: { email: 'bob@x.io', phone: '+1 415 555 2671', name: 'Bob' }, customer_id: 'C-1001', gps: { lat: 52.123456, lon: '13.987654' }, debug: { trace: [1, 2] }, status: 'ok' }
  const out = maskJson({ fields: [
    { path: 'owner.email', action: 'redact' },
    { path: 'owner.phone', action: 'last4' },
    { path: 'customer_id', action: 'hash' },
    { path: 'gps.lat', action: 'round', digits: 2 },
    { path: 'gps.lon', action: 'round', digits: 1 },
    { path: 'debug', action: 'drop' },
    { path: 'status', action: 'replace', value: { hidden: true } },
  ] }, doc) as Record<string, any>
  t.equal(out.owner.email, '[REDACTED]')
  t.equal(out.owner.phone, '****2671')
  t.equal(out.owner.name, 'Bob', 'untouched siblings stay')
  t.match(out.customer_id, /^h:[0-9a-f]{32}$/)
  t.equal(out.gps.lat, 52.12)
  t.equal(out.gps.lon, '14.0', 'numeric strings round and stay strings')
  t.notOk('debug' in out, 'drop removes the key')
  t.same(out.status, { hidden: true })
})

t.test('action edge cases', async (t) => {
  const f = (action: any, value: unknown, extra: object = {}) => (maskJson({ fields: [{ path: 'v', action, ...extra }] }, { v: value }) as any).v
  t.equal(f('last4', '123'), '****', 'short values reveal nothing')
  t.equal(f('last4', 12345678), '****5678')
  t.equal(f('last4', { a: 1 }), '[REDACTED]', 'structures are redacted')
  t.equal(f('last4', 'ünïcödé✓'), '****ödé✓', 'characters, not bytes')
  t.equal(f('round', 'abc'), '[REDACTED]', 'non-numbers never pass raw through round')
  t.equal(f('round', 2.5), 3)
  t.equal(f('round', -1.23456, { digits: 3 }), -1.235)
  t.equal(f('round', null), null)
  t.equal(f('redact', { deep: { x: 1 } }), '[REDACTED]')
  t.equal(f('replace', 'x', { value: 0 }), 0)
  t.equal(f('hash', 42), f('hash', '42'), 'a number and its text hash alike (joinable)')
})

t.test('hash is stable and depends on the key', async (t) => {
  const h = (v: unknown, key = KEY) => (maskJson({ fields: [{ path: 'id', action: 'hash' }] }, { id: v }, key) as any).id
  t.equal(h('C-1001'), h('C-1001'))
  t.not(h('C-1001'), h('C-1002'))
  t.not(h('C-1001'), h('C-1001', Buffer.from('another key')))
  t.not(h('C-1001'), 'C-1001')
  t.notMatch(h('C-1001'), /C-1001/)
})

t.test('path forms', async (t) => {
  t.same(parsePath('readings[*].serial'), [{ k: 'key', name: 'readings' }, { k: 'each' }, { k: 'key', name: 'serial' }])
  t.same(parsePath('*.x'), [{ k: 'anyKey' }, { k: 'key', name: 'x' }])
  t.same(parsePath('[*][2]'), [{ k: 'each' }, { k: 'index', i: 2 }])
  for (const bad of ['', 'a..b', '.a', 'a.', 'a[x]', 'a]b', 'a[*]b']) t.throws(() => parsePath(bad), `rejects '${bad}'`)

  const doc = { readings: [{ serial: 'A1', v: 1 }, { serial: 'A2', v: 2 }, { v: 3 }], sensors: { s1: { secret: 'x', ok: 1 }, s2: { secret: 'y' } }, list: [[1, 2], [3, 4]] }
  const out = maskJson({ fields: [
    { path: 'readings[*].serial', action: 'redact' },
    { path: 'sensors.*.secret', action: 'drop' },
    { path: 'list[*][0]', action: 'replace', value: 0 },
    { path: 'absent.path.here', action: 'redact' },
    { path: 'readings[9].serial', action: 'redact' },
    { path: 'sensors.s1.ok.deeper', action: 'redact' },
  ] }, doc) as any
  t.same(out.readings, [{ serial: '[REDACTED]', v: 1 }, { serial: '[REDACTED]', v: 2 }, { v: 3 }], 'absent elements are fine')
  t.same(out.sensors, { s1: { ok: 1 }, s2: {} })
  t.same(out.list, [[0, 2], [0, 4]])
  t.same(maskJson({ fields: [{ path: '[*].pw', action: 'redact' }] }, [{ pw: 1 }, { pw: 2 }]), [{ pw: '[REDACTED]' }, { pw: '[REDACTED]' }], 'root arrays')
  t.same(maskJson({ fields: [{ path: 'a[*]', action: 'drop' }] }, { a: [1, 2, 3] }), { a: [] })
  t.same(maskJson({ fields: [{ path: 'a[1]', action: 'drop' }] }, { a: [1, 2, 3] }), { a: [1, 3] })
  t.same(maskJson({ fields: [{ path: '*', action: 'redact' }] }, { a: 1, b: { c: 2 } }), { a: '[REDACTED]', b: '[REDACTED]' })
})

t.test('__proto__ keys are data, not prototypes', async (t) => {
  const p = plan([{ fields: [{ path: '__proto__', action: 'replace', value: { polluted: true } }], detectors: ['email'] }])
  const r = p.apply(p.match('t'), Buffer.from('{"__proto__":{"x":"bob@x.io"}}'))
  t.ok(r.ok)
  t.equal(({} as any).polluted, undefined)
  if (r.ok) t.equal(r.payload.toString(), '{"__proto__":{"polluted":true}}')
})

t.test('detectors scan nested strings; fields apply first', async (t) => {
  const out = maskJson({ detectors: ['email', 'credit_card', 'jwt'], fields: [{ path: 'contact', action: 'hash' }] }, {
    contact: 'bob@x.io',
    notes: ['paid with 4111 1111 1111 1111 yesterday', { deeper: [{ text: 'mail alice@y.org' }] }],
    count: 4111111111111111,
    serial: '4929384756102938',
  }) as any
  t.match(out.contact, /^h:/, 'field action, not the detector, handled contact')
  t.equal(out.notes[0], 'paid with [REDACTED:credit_card] yesterday')
  t.equal(out.notes[1].deeper[0].text, 'mail [REDACTED:email]')
  t.equal(out.count, 4111111111111111, 'numbers are not strings: left alone')
  t.equal(out.serial, '4929384756102938', 'a Luhn-invalid serial survives')
})

t.test('counts and mask ids, never values', async (t) => {
  const p = plan([{ fields: [{ path: 'a', action: 'redact' }, { path: 'b[*]', action: 'hash' }], detectors: ['email'] }])
  const r = p.apply(p.match('t'), Buffer.from(JSON.stringify({ a: 1, b: [1, 2, 3], c: 'x@y.io and z@w.io' })))
  t.ok(r.ok)
  if (!r.ok) return
  t.same(r.masks, ['m0'])
  t.same(r.counts, { redact: 1, hash: 3, email: 2 })
})

t.test('unchanged payloads keep their bytes', async (t) => {
  const p = plan([{ fields: [{ path: 'absent', action: 'redact' }], detectors: ['email'] }])
  const raw = Buffer.from('{ "big": 12345678901234567890, "s": "fine" }')
  const r = p.apply(p.match('t'), raw)
  t.ok(r.ok && r.payload === raw, 'same Buffer, no re-encode (no precision loss)')
})

t.test('formats', async (t) => {
  t.equal(sniff(Buffer.from(' {"a":1}')), 'json')
  t.equal(sniff(Buffer.from('[1]')), 'json')
  t.equal(sniff(packr.pack(new Map([['a', 1]]))), 'msgpack')
  t.equal(sniff(packr.pack([1, 2])), 'msgpack')
  t.equal(sniff(Buffer.from('plain text ✓')), 'text')
  t.equal(sniff(Buffer.from([0xff, 0xfe, 0x00, 0x81])), undefined, 'binary that is none of them')

  const text = plan([{ format: 'text', detectors: ['email', 'ipv4'] }])
  const r = text.apply(text.match('t'), Buffer.from('login from 10.0.0.7 by bob@x.io'))
  t.ok(r.ok && r.payload.toString() === 'login from [REDACTED:ipv4] by [REDACTED:email]')

  const auto = plan([{ detectors: ['email'], fields: [{ path: 'e', action: 'redact' }] }])
  const j = auto.apply(auto.match('t'), Buffer.from('{"e":"x","f":"bob@x.io"}'))
  t.ok(j.ok && j.payload.toString() === '{"e":"[REDACTED]","f":"[REDACTED:email]"}', 'auto → json')
  const m = auto.apply(auto.match('t'), packr.pack(new Map<unknown, unknown>([['e', 'x'], ['f', 'bob@x.io']])))
  t.ok(m.ok)
  if (m.ok) t.same(unpackr.unpack(m.payload), new Map([['e', '[REDACTED]'], ['f', '[REDACTED:email]']]), 'auto → msgpack')
  const tx = auto.apply(auto.match('t'), Buffer.from('hello bob@x.io'))
  t.ok(tx.ok && tx.payload.toString() === 'hello [REDACTED:email]', 'auto → text')
})

t.test('msgpack round trip: nested maps, arrays, binary, extension types, int keys', async (t) => {
  // hand-built: {"a": ext5(01020304), "b": ext(-3, 20 bytes), 1: bin(090909), "n": {"pw": "s", "l": [1, "bob@x.io"]}, "t": timestamp}
  const value = new Map<unknown, unknown>([
    ['a', new OpaqueExt(5, Uint8Array.of(1, 2, 3, 4))],
    ['b', new OpaqueExt(-3, new Uint8Array(20).fill(7))],
    [1, Buffer.from([9, 9, 9])],
    ['n', new Map<unknown, unknown>([['pw', 's3cret'], ['l', [1, 'bob@x.io', Buffer.from([0])]]])],
    [7, 'by int key'],
  ])
  const raw = encodeMsgpack(value)
  t.same(decodeMsgpack(raw), value, 'decode(encode(v)) = v')
  t.ok(encodeMsgpack(decodeMsgpack(raw)).equals(raw), 'byte-exact round trip')
  const p = plan([{ format: 'msgpack', fields: [{ path: 'n.pw', action: 'redact' }, { path: '7', action: 'last4' }], detectors: ['email'] }])
  const r = p.apply(p.match('t'), raw)
  t.ok(r.ok)
  if (!r.ok) return
  const out = decodeMsgpack(r.payload) as Map<unknown, unknown>
  t.same(out.get('a'), new OpaqueExt(5, Uint8Array.of(1, 2, 3, 4)), 'extension kept')
  t.same(out.get('b'), new OpaqueExt(-3, new Uint8Array(20).fill(7)))
  t.same(out.get(1), Buffer.from([9, 9, 9]), 'binary kept')
  t.equal(out.get(7), '****/key'.replace('/key', ' key'.slice(-4)), 'integer map keys addressable by path')
  const n = out.get('n') as Map<unknown, unknown>
  t.equal(n.get('pw'), '[REDACTED]')
  t.same(n.get('l'), [1, '[REDACTED:email]', Buffer.from([0])])
  // a raw, hand-written buffer with an ext type msgpackr does not know
  const hand = Buffer.from([0x82, 0xa1, 0x61, 0xd6, 0x05, 1, 2, 3, 4, 0xa1, 0x65, 0xa8, ...Buffer.from('bob@x.io')])
  const r2 = plan([{ detectors: ['email'] }]).apply(plan([{ detectors: ['email'] }]).match('t'), hand)
  t.ok(r2.ok)
  if (r2.ok) t.same(decodeMsgpack(r2.payload), new Map<unknown, unknown>([['a', new OpaqueExt(5, Uint8Array.of(1, 2, 3, 4))], ['e', '[REDACTED:email]']]))
})

t.test('unparseable inputs follow onParseError', async (t) => {
  const bad = [
    ['json', Buffer.from('{"a": 1,')],
    ['json', Buffer.from('{"a": NaN}')],
    ['json', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
    ['msgpack', Buffer.from([0x82, 0xa1])],
    ['msgpack', Buffer.concat([packr.pack({ a: 1 }), Buffer.from([1])])],
    ['auto', Buffer.from([0x00, 0xff, 0xfe, 0x81])],
    ['auto', Buffer.from('{not json')],
  ] as const
  for (const [format, raw] of bad) {
    const block = plan([{ format, fields: [{ path: 'a', action: 'redact' }] }])
    const r = block.apply(block.match('t'), raw)
    t.ok(!r.ok && r.reason === 'unparseable_payload' && r.mask === 'm0', `${format} ${raw.toString('hex').slice(0, 20)} blocked`)
    const pass = plan([{ format, fields: [{ path: 'a', action: 'redact' }] }], KEY, 'pass')
    const rp = pass.apply(pass.match('t'), raw)
    t.ok(rp.ok && rp.payload === raw, 'pass keeps the bytes')
    const ra = plan([{ format, onParseError: 'redact-all', fields: [{ path: 'a', action: 'redact' }] }]).apply(plan([{ format, onParseError: 'redact-all' }]).match('t'), raw)
    t.ok(ra.ok && ra.payload.toString() === '[REDACTED]', 'a mask may override with redact-all')
  }
})

t.test('hostile structures do not crash', async (t) => {
  const deep = '['.repeat(10_000) + '"bob@x.io"' + ']'.repeat(10_000)
  const p = plan([{ detectors: ['email'] }])
  const r = p.apply(p.match('t'), Buffer.from(deep))
  t.ok(!r.ok, '10,000-deep nesting with detectors is refused, not a stack overflow')
  const q = plan([{ fields: [{ path: 'a', action: 'redact' }] }])
  const r2 = q.apply(q.match('t'), Buffer.from('{"a":1,"b":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}'))
  t.ok(r2.ok || r2.reason === 'unparseable_payload', 'deep structure under a field rule: masked or refused, never a crash')
  const big = { rows: Array.from({ length: 9000 }, (_, i) => ({ i, mail: `user${i}@example.com`, note: 'x'.repeat(80) })) }
  const raw = Buffer.from(JSON.stringify(big))
  t.ok(raw.length > 1024 * 1024, '1 MiB payload')
  const r3 = p.apply(p.match('t'), raw)
  t.ok(r3.ok)
  if (r3.ok) {
    t.notMatch(r3.payload.toString(), /@example\.com/)
    t.equal(r3.counts.email, 9000)
  }
  const dup = p.apply(p.match('t'), Buffer.from('{"a":"bob@x.io","a":"z@y.io"}'))
  t.ok(dup.ok && dup.payload.toString() === '{"a":"[REDACTED:email]"}', 'duplicate keys: the parsed (last) value, masked, is what leaves')
})
