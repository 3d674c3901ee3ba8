import t from 'tap'
import { createHmac } from 'node:crypto'
import { Packr } from 'msgpackr'
import { decodeMsgpack, OpaqueExt } from '../../src/mask/codecs.js'
import { DETECTOR_NAMES } from '../../src/mask/detectors.js'
import { KEY, plan } from './helpers.js'

/**
 * A corpus of payloads with expected outputs, all through one mask (auto format, field rules
 * and every detector): `out` is the exact masked payload, `refused` a block, `same` the input
 * bytes unchanged, `check` a custom assertion for what cannot be written out.
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: false })
const h = (v: string) => 'h:' + createHmac('sha256', KEY).update(v).digest('hex').slice(0, 32)
const J = (v: unknown) => Buffer.from(JSON.stringify(v))
const MP = (v: unknown) => packr.pack(v)
const M = (entries: [unknown, unknown][]) => new Map(entries)

const mask = plan([{
  format: 'auto',
  fields: [
    { path: 'user.email', action: 'redact' },
    { path: 'user.phone', action: 'last4' },
    { path: 'id', action: 'hash' },
    { path: 'loc.lat', action: 'round', digits: 2 },
    { path: 'debug', action: 'drop' },
    { path: 'items[*].sn', action: 'redact' },
    { path: 'tags[0]', action: 'replace', value: 'first' },
  ],
  detectors: [...DETECTOR_NAMES],
}])
const masks = mask.match('any/topic')

type Case = { name: string; in: Buffer } & ({ out: string | Buffer } | { refused: true } | { same: true } | { check: (out: Buffer) => void })

const deep = (n: number) => Buffer.from('['.repeat(n) + '1' + ']'.repeat(n))
const bigRows = Array.from({ length: 11_000 }, (_, i) => ({ i, who: `user${i}@example.com`, pad: 'p'.repeat(60) }))
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'

const cases: Case[] = [
  { name: 'empty object', in: J({}), same: true },
  { name: 'empty payload', in: Buffer.alloc(0), same: true },
  { name: 'whitespace only', in: Buffer.from('  \n'), same: true },
  { name: 'flat field redact', in: J({ user: { email: 'bob@x.io' } }), out: '{"user":{"email":"[REDACTED]"}}' },
  { name: 'last4 and hash', in: J({ user: { phone: '+1 415 555 2671' }, id: 'C-1' }), out: `{"user":{"phone":"****2671"},"id":"${h('C-1')}"}` },
  { name: 'hash of a number = hash of its text', in: J({ id: 1001 }), out: `{"id":"${h('1001')}"}` },
  { name: 'round', in: J({ loc: { lat: 52.520008, lon: 13.4 } }), out: '{"loc":{"lat":52.52,"lon":13.4}}' },
  { name: 'round a numeric string', in: J({ loc: { lat: '52.526' } }), out: '{"loc":{"lat":"52.53"}}' },
  { name: 'round a non-number redacts', in: J({ loc: { lat: 'north' } }), out: '{"loc":{"lat":"[REDACTED]"}}' },
  { name: 'drop', in: J({ debug: { heap: 1 }, ok: true }), out: '{"ok":true}' },
  { name: 'array elements', in: J({ items: [{ sn: 'A' }, { sn: 'B', v: 1 }, {}] }), out: '{"items":[{"sn":"[REDACTED]"},{"sn":"[REDACTED]","v":1},{}]}' },
  { name: 'one element replaced', in: J({ tags: ['a', 'b'] }), out: '{"tags":["first","b"]}' },
  { name: 'absent paths are fine', in: J({ other: 1 }), same: true },
  { name: 'path through a non-object', in: J({ user: 'just a string', items: 'nope' }), same: true },
  { name: 'null at a path is redacted', in: J({ user: { email: null } }), out: '{"user":{"email":"[REDACTED]"}}' },
  { name: 'short last4 reveals nothing', in: J({ user: { phone: '123' } }), out: '{"user":{"phone":"****"}}' },
  { name: 'unicode kept around a match', in: J({ note: 'Grüße 👋 bob@x.io ✓' }), out: '{"note":"Grüße 👋 [REDACTED:email] ✓"}' },
  { name: 'unicode keys', in: J({ 'ключ': 'alice@y.org' }), out: '{"ключ":"[REDACTED:email]"}' },
  { name: 'detectors in nested arrays', in: J({ a: [[{ b: ['call +14155552671'] }]] }), out: '{"a":[[{"b":["call [REDACTED:phone]"]}]]}' },
  { name: 'JWT in a header string', in: J({ headers: { auth: `Bearer ${JWT}` } }), out: '{"headers":{"auth":"Bearer [REDACTED:jwt]"}}' },
  { name: 'bearer token', in: J({ h: 'Authorization: Bearer abcdefghijklmnop1234' }), out: '{"h":"Authorization: [REDACTED:secret]"}' },
  { name: 'password in a query string', in: J({ url: 'https://x/?user=a&password=hunter2&z=1' }), out: '{"url":"https://x/?user=a&password=[REDACTED:secret]&z=1"}' },
  { name: 'AWS key and card in one string', in: J({ s: 'AKIAIOSFODNN7EXAMPLE 4111111111111111' }), out: '{"s":"[REDACTED:secret] [REDACTED:credit_card]"}' },
  { name: 'Luhn-invalid serial survives', in: J({ sn: '4111111111111112' }), same: true },
  { name: 'timestamps survive', in: J({ ts: '2026-11-25T18:45:27.123Z', ms: '1732560327123' }), same: true },
  { name: 'SSN and IBAN', in: J({ s: 'ssn 078-05-1120 iban DE89370400440532013000' }), out: '{"s":"ssn [REDACTED:ssn] iban [REDACTED:iban]"}' },
  { name: 'IPv4 and IPv6 in a log line', in: J({ log: 'from 10.1.2.3 via fe80::1 ok' }), out: '{"log":"from [REDACTED:ipv4] via [REDACTED:ipv6] ok"}' },
  { name: 'JSON string scalar', in: Buffer.from('"bob@x.io"'), out: '"[REDACTED:email]"' },
  { name: 'JSON array root', in: J(['a', 'b@c.io']), out: '["a","[REDACTED:email]"]' },
  { name: 'number scalar is text, untouched', in: Buffer.from('42'), same: true },
  { name: 'duplicate keys: the parsed value leaves', in: Buffer.from('{"id":"a","id":"b"}'), out: `{"id":"${h('b')}"}` },
  { name: '__proto__ is data', in: Buffer.from('{"__proto__":{"user":{"email":"x"}},"user":{"email":"y"}}'), out: '{"__proto__":{"user":{"email":"x"}},"user":{"email":"[REDACTED]"}}' },
  { name: 'a key with a dot is not a path', in: J({ 'user.email': 'z' }), same: true },
  { name: 'UTF-8 BOM before JSON', in: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), J({ user: { email: 'q' } })]), out: '{"user":{"email":"[REDACTED]"}}' },
  { name: 'NaN is not JSON', in: Buffer.from('{"v": NaN}'), refused: true },
  { name: 'Infinity is not JSON', in: Buffer.from('{"v": Infinity}'), refused: true },
  { name: 'truncated JSON', in: Buffer.from('{"user": {"email": "bob@x.io"'), refused: true },
  { name: 'invalid UTF-8 inside JSON', in: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), refused: true },
  { name: 'binary garbage', in: Buffer.from([0x00, 0x01, 0xfe, 0xff, 0xc3, 0x28]), refused: true },
  { name: '10,000-deep nesting', in: deep(10_000), refused: true },
  { name: '200-deep nesting is fine', in: deep(200), same: true },
  { name: 'text payload with a PEM key', in: Buffer.from('key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\nend'), out: 'key:\n[REDACTED:private_key]\nend' },
  { name: 'text payload, nothing to mask', in: Buffer.from('door opened by service tech'), same: true },
  { name: 'invalid UTF-8 text is not text under auto', in: Buffer.concat([Buffer.from('x '), Buffer.from([0xc3, 0x28]), Buffer.from(' bob@x.io')]), refused: true },
  { name: 'msgpack map with fields and detectors', in: MP(M([['user', M([['email', 'bob@x.io'], ['phone', '5551234567']])], ['note', 'ip 10.0.0.1']])), out: MP(M([['user', M([['email', '[REDACTED]'], ['phone', '****4567']])], ['note', 'ip [REDACTED:ipv4]']])) },
  { name: 'msgpack binary and integer keys kept', in: MP(M([[1, Buffer.from([1, 2, 3])], ['debug', true], [2, 'bob@x.io']])), out: MP(M([[1, Buffer.from([1, 2, 3])], [2, '[REDACTED:email]']])) },
  { name: 'msgpack array root', in: MP([M([['sn', 'x']]), 'a@b.io']), out: MP([M([['sn', 'x']]), '[REDACTED:email]']) },
  {
    name: 'msgpack unknown extension types kept', in: Buffer.from([0x82, 0xa1, 0x78, 0xd6, 0x05, 1, 2, 3, 4, 0xa1, 0x65, 0xa8, ...Buffer.from('bob@x.io')]),
    out: Buffer.from([0x82, 0xa1, 0x78, 0xd6, 0x05, 1, 2, 3, 4, 0xa1, 0x65, 0xb0, ...Buffer.from('[REDACTED:email]')]),
  },
  { name: 'msgpack timestamp extension', in: MP(M([['at', new Date(1732560327000)], ['m', 'a@b.io']])), check: (out) => t.same(decodeMsgpack(out), M([['at', new Date(1732560327000)], ['m', '[REDACTED:email]']])) },
  { name: 'msgpack with ext in a nested array', in: MP(M([['l', [new OpaqueExt(7, Uint8Array.of(9)), 'x@y.io']]])), out: MP(M([['l', [new OpaqueExt(7, Uint8Array.of(9)), '[REDACTED:email]']]])) },
  { name: 'msgpack truncated', in: MP(M([['user', 'bob@x.io']])).subarray(0, 6), refused: true },
  { name: 'msgpack with trailing bytes', in: Buffer.concat([MP(M([['a', 1]])), Buffer.from([0xc0])]), refused: true },
  { name: 'large string without matches', in: J({ blob: 'lorem ipsum '.repeat(20_000) }), same: true },
  {
    name: '1 MiB payload, 11,000 emails', in: J({ rows: bigRows }),
    check: (out) => {
      t.ok(J({ rows: bigRows }).length > 1024 * 1024)
      t.notMatch(out.toString(), /@example\.com/)
      t.equal(out.toString().split('[REDACTED:email]').length - 1, 11_000)
    },
  },
]

t.ok(cases.length >= 40, `${cases.length} cases`)
for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = mask.apply(masks, c.in)
    if ('refused' in c) {
      t.ok(!r.ok, 'refused (onParseError: block)')
      if (!r.ok) t.equal(r.reason, 'unparseable_payload')
      return
    }
    t.ok(r.ok, 'masked')
    if (!r.ok) return
    if ('same' in c) t.equal(r.payload, c.in, 'the same bytes')
    else if ('out' in c) t.equal(r.payload.toString('hex'), Buffer.from(c.out).toString('hex'), typeof c.out === 'string' ? c.out.slice(0, 80) : 'msgpack bytes')
    else c.check(r.payload)
  })
}

t.test('format: text reads invalid UTF-8 lossily and still masks', async (t) => {
  const p = plan([{ format: 'text', detectors: ['email'] }])
  const r = p.apply(p.match('t'), Buffer.concat([Buffer.from('x '), Buffer.from([0xc3, 0x28]), Buffer.from(' bob@x.io')]))
  t.ok(r.ok && r.payload.toString() === 'x \ufffd( [REDACTED:email]')
})
