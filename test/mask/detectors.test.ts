import t from 'tap'
import { compileDetectors, DETECTOR_NAMES, ibanValid, luhn, type DetectorName } from '../../src/mask/detectors.js'

const all = compileDetectors(DETECTOR_NAMES)

/** positive: [input, expected output] with only that detector active; negative: left untouched */
const cases: Record<DetectorName, { pos: [string, string][]; neg: string[] }> = {
  email: {
    pos: [
      ['mail bob@example.com now', 'mail [REDACTED:email] now'],
      ['<first.last+tag@sub.example.co.uk>', '<[REDACTED:email]>'],
      ['a@b.io,c_d@e-f.org', '[REDACTED:email],[REDACTED:email]'],
      ['z@y.io', '[REDACTED:email]'],
    ],
    neg: ['user@localhost', 'a@b.c', '@handle on twitter', 'foo@', 'price 5 @ 10.00'],
  },
  phone: {
    pos: [
      ['call +14155552671', 'call [REDACTED:phone]'],
      ['tel: +44 20 7946 0958.', 'tel: [REDACTED:phone].'],
      ['+49 (30) 1234-5678', '[REDACTED:phone]'],
      ['(415) 555-2671', '[REDACTED:phone]'],
      ['office 415-555-2671 ext', 'office [REDACTED:phone] ext'],
      ['415.555.2671', '[REDACTED:phone]'],
      ['uk 020 7946 0958', 'uk [REDACTED:phone]'],
      ['mobile 07700 900123', 'mobile [REDACTED:phone]'],
    ],
    neg: [
      '2026-11-25T18:45:27.123Z', '1732560327123', 'SN-20261125-0042', 'serial 1234567890', 'build 20261125',
      'v1.2.3', '+1234', 'temp 23.456789', '12:30:45', 'mac 00:1A:2B:3C:4D:5E', 'id 415-555-26711', '0123 4567',
    ],
  },
  credit_card: {
    pos: [
      ['card 4111 1111 1111 1111 exp 12/27', 'card [REDACTED:credit_card] exp 12/27'],
      ['4111-1111-1111-1111', '[REDACTED:credit_card]'],
      ['5500000000000004', '[REDACTED:credit_card]'],
      ['amex 378282246310005', 'amex [REDACTED:credit_card]'],
      ['amex 3782 822463 10005', 'amex [REDACTED:credit_card]'],
      ['4111 1111 1111 1111 12', '[REDACTED:credit_card] 12'],
    ],
    neg: [
      '4111111111111112', // Luhn fails
      '1234567812345670', // Luhn-valid but no issuer prefix
      'serial 4929384756102938', // random serial, Luhn fails
      '41111111111111110000', // too long
      '4111 1111-1111 1111', // mixed separators
      '411111111111',
    ],
  },
  iban: {
    pos: [
      ['pay to GB82 WEST 1234 5698 7654 32 today', 'pay to [REDACTED:iban] today'],
      ['DE89370400440532013000', '[REDACTED:iban]'],
      ['FR1420041010050500013M02606', '[REDACTED:iban]'],
    ],
    neg: ['GB82 WEST 1234 5698 7654 33', 'DE89370400440532013001', 'XX00ABCD', 'ISO8601 timestamps'],
  },
  ipv4: {
    pos: [
      ['from 192.168.1.20:8080', 'from [REDACTED:ipv4]:8080'],
      ['10.0.0.1.', '[REDACTED:ipv4].'],
      ['0.0.0.0 and 255.255.255.255', '[REDACTED:ipv4] and [REDACTED:ipv4]'],
    ],
    neg: ['256.1.1.1', '1.2.3', 'version 1.2.3.4.5', '999.999.999.999', 'oid 1.3.6.1.4.1', '3.14159'],
  },
  ipv6: {
    pos: [
      ['peer 2001:db8::8a2e:370:7334 up', 'peer [REDACTED:ipv6] up'],
      ['fe80::1', '[REDACTED:ipv6]'],
      ['::1', '[REDACTED:ipv6]'],
      ['::ffff:192.168.1.1', '[REDACTED:ipv6]'],
      ['2001:0db8:85a3:0000:0000:8a2e:0370:7334', '[REDACTED:ipv6]'],
    ],
    neg: ['12:30:45', 'mac 00:1A:2B:3C:4D:5E', 'ratio 16:9', 'note: see: this', 'a::b::c', 'std::vector'],
  },
  ssn: {
    pos: [['ssn 123-45-6789.', 'ssn [REDACTED:ssn].'], ['078-05-1120', '[REDACTED:ssn]']],
    neg: ['000-12-3456', '666-12-3456', '900-12-3456', '123-00-4567', '123-45-0000', '123-45-67890', '2026-11-25', '123456789'],
  },
  jwt: {
    pos: [[
      'tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end',
      'tok [REDACTED:jwt] end',
    ], ['eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', '[REDACTED:jwt]']],
    neg: ['eyJhbGciOiJIUzI1NiJ9', 'eyJhbGc.abc.def', 'abc.def.ghi', 'xeyJhbGciOiJIUzI1NiJ9'],
  },
  private_key: {
    pos: [
      ['k=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\nok', 'k=[REDACTED:private_key]\nok'],
      ['-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----', '[REDACTED:private_key]'],
      ['-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA', '[REDACTED:private_key]'],
    ],
    neg: ['-----BEGIN PUBLIC KEY-----\nMFkwEw\n-----END PUBLIC KEY-----', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----', 'the private key is on the card'],
  },
  secret: {
    pos: [
      ['aws AKIAIOSFODNN7EXAMPLE key', 'aws [REDACTED:secret] key'],
      ['Authorization: Bearer abcdef0123456789abcdef', 'Authorization: [REDACTED:secret]'],
      ['key sk-proj-abcdefghijklmnopqrstuvwxyz012345', 'key [REDACTED:secret]'],
      ['sk-ant-api03-abcdefghijklmnopqrstuvwxyz', '[REDACTED:secret]'],
      ['ghp_abcdefghijklmnopqrstuvwxyz0123456789', '[REDACTED:secret]'],
      ['xoxb-123456789012-abcdefghij', '[REDACTED:secret]'],
      ['url?password=hunter2&x=1', 'url?password=[REDACTED:secret]&x=1'],
      ['{"api_key": "abc 123"}', '{"api_key": "[REDACTED:secret]"}'],
      ["client_secret='s3cr3t'", "client_secret='[REDACTED:secret]'"],
      ['API_KEY=sk-abcdefghijklmnopqrstuvwxyz', 'API_KEY=[REDACTED:secret]'],
    ],
    neg: [
      'AKIA1234', 'akiaiosfodnn7example', 'bearer of bad news', 'task-list', 'sk-short', 'ghp_short',
      'password reset requested', 'the secret garden', 'xox-hugs',
    ],
  },
}

for (const [name, { pos, neg }] of Object.entries(cases) as [DetectorName, (typeof cases)[DetectorName]][]) {
  t.test(name, async (t) => {
    const d = compileDetectors([name])
    for (const [input, expected] of pos) {
      const r = d.replaceAll(input)
      t.equal(r.text, expected, `masks ${JSON.stringify(input)}`)
      t.ok(r.hits.length > 0 && r.hits.every((h) => h === name), 'hits name the detector')
      t.equal(d.firstMatch(input), name, `firstMatch ${JSON.stringify(input)}`)
    }
    for (const input of neg) {
      const r = d.replaceAll(input)
      t.equal(r.text, input, `leaves ${JSON.stringify(input)}`)
      t.same(r.hits, [])
      t.equal(d.firstMatch(input), undefined, `no firstMatch in ${JSON.stringify(input)}`)
    }
  })
}

t.test('near misses survive every detector at once', async (t) => {
  for (const s of ['2026-11-25T18:45:27.123Z', 'SN-20261125-0042', 'device-12 ok', 'temp=21.5;hum=40', '1732560327123', 'ratio 16:9']) {
    t.equal(all.replaceAll(s).text, s, s)
  }
})

t.test('mixed text keeps the rest of the string and counts each hit', async (t) => {
  const r = all.replaceAll('bob@x.io paid 4111111111111111 from 10.1.2.3, token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln')
  t.equal(r.text, '[REDACTED:email] paid [REDACTED:credit_card] from [REDACTED:ipv4], token [REDACTED:jwt]')
  t.same([...r.hits].sort(), ['credit_card', 'email', 'ipv4', 'jwt'])
  const twice = all.replaceAll(r.text)
  t.equal(twice.text, r.text, 'masked output is stable (no detector matches a replacement token)')
  t.same(twice.hits, [])
})

t.test('no match returns the same string', async (t) => {
  const s = 'a perfectly ordinary status message'
  const r = all.replaceAll(s)
  t.equal(r.text, s)
  t.equal(r.hits.length, 0)
})

t.test('empty set and unknown names', async (t) => {
  const none = compileDetectors([])
  t.equal(none.replaceAll('bob@x.io').text, 'bob@x.io')
  t.equal(none.firstMatch('bob@x.io'), undefined)
  t.throws(() => compileDetectors(['nope' as DetectorName]), /unknown detector/)
  t.same(compileDetectors(['phone', 'email', 'email']).names, ['email', 'phone'], 'priority order, no duplicates')
})

t.test('checksums', async (t) => {
  t.ok(luhn('4111111111111111'))
  t.notOk(luhn('4111111111111112'))
  t.ok(ibanValid('GB82 WEST 1234 5698 7654 32'))
  t.notOk(ibanValid('GB82 WEST 1234 5698 7654 33'))
})

t.test('large hostile strings finish (no catastrophic backtracking)', async (t) => {
  const inputs = [
    '1'.repeat(100_000), '1-'.repeat(50_000), 'a@'.repeat(50_000) + 'x', ':'.repeat(100_000), 'a:'.repeat(50_000),
    '+1 '.repeat(30_000), 'eyJ'.repeat(30_000), 'password='.repeat(10_000), '-----BEGIN PRIVATE KEY-----' + 'A'.repeat(100_000),
    'a.'.repeat(50_000) + '@', '1.'.repeat(50_000), ('x'.repeat(63) + '.').repeat(1000) + '@',
  ]
  for (const s of inputs) {
    const r = all.replaceAll(s)
    t.type(r.text, 'string')
  }
})

// The prefilter (one pass over the characters before any regex) must only skip strings a
// detector cannot match: each value below sits where a cheap check could go wrong.
t.test('prefilter does not skip matches at its edges', async (t) => {
  const edges: [DetectorName, string, string][] = [
    ['credit_card', '4111 1111 1111 1111', '[REDACTED:credit_card]'],
    ['credit_card', 'x4111-1111-1111-1111', 'x[REDACTED:credit_card]'],
    ['credit_card', 'exp 12/27 3782 822463 10005', 'exp 12/27 [REDACTED:credit_card]'],
    ['ssn', '123-45-6789 at start', '[REDACTED:ssn] at start'],
    ['phone', '(415) 555-2671', '[REDACTED:phone]'],
    ['phone', 'x:+49 (30) 1234-5678', 'x:[REDACTED:phone]'],
    ['phone', 'ends +14155552671', 'ends [REDACTED:phone]'],
    // letters of any script belong to the address: nothing of the local part is left visible
    ['email', 'Grüße jörg.müller+x@example.com', 'Grüße [REDACTED:email]'],
    ['email', 'an: 用户@例子.广告 ok', 'an: [REDACTED:email] ok'],
    ['email', 'Ζωή.Π@παράδειγμα.ελ', '[REDACTED:email]'],
    ['email', '👋bob@example.com✓', '👋[REDACTED:email]✓'],
    ['email', 'z@y.io', '[REDACTED:email]'],
    ['ipv4', 'to 10.0.0.1', 'to [REDACTED:ipv4]'],
    ['ipv6', '::ffff:192.168.1.1 first', '[REDACTED:ipv6] first'],
    ['ipv6', 'last fe80::1', 'last [REDACTED:ipv6]'],
    ['iban', 'to GB82 WEST 1234 5698 7654 32', 'to [REDACTED:iban]'],
    ['jwt', 'x=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'x=[REDACTED:jwt]'],
    ['private_key', '-----BEGIN PRIVATE KEY-----', '[REDACTED:private_key]'], // the shortest match (27 chars)
    ['secret', 'AKIAIOSFODNN7EXAMPLE', '[REDACTED:secret]'],
    ['secret', 'key: AIzaSyA-abcdefghijklmnopqrstuvwxyz01234', 'key: [REDACTED:secret]'],
    ['secret', 'github_pat_abcdefghijklmnopqrstuvwxyz01', '[REDACTED:secret]'], // no `gh` in `github`
    ['secret', 'sk_live_abcdefghijklmnop1234', '[REDACTED:secret]'],
    ['secret', 'xoxb-1234567890', '[REDACTED:secret]'], // the shortest token shape (15 chars)
    ['secret', 'auth bearer\tabcdef0123456789abcdef', 'auth [REDACTED:secret]'],
    ['secret', 'pwd=x', 'pwd=[REDACTED:secret]'],
    ['secret', 'PASSWORD\u00a0:\u2003hunter2', 'PASSWORD\u00a0:\u2003[REDACTED:secret]'], // unicode spaces, upper-case key
    ['secret', '{"Refresh-Token" : "abc"}', '{"Refresh-Token" : "[REDACTED:secret]"}'],
    ['secret', "a=1;Api_Key='k'", "a=1;Api_Key='[REDACTED:secret]'"],
  ]
  for (const [name, input, expected] of edges) {
    t.equal(compileDetectors([name]).replaceAll(input).text, expected, `${name} alone: ${JSON.stringify(input)}`)
    t.equal(compileDetectors([name]).firstMatch(input), name, `${name} firstMatch: ${JSON.stringify(input)}`)
  }
})

t.test('prefilter gives the same output as running every regex', async (t) => {
  // deterministic pseudo-random strings from the characters and shapes the prefilter counts
  let seed = 12345
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  const atoms = ['0', '1', '4', '7', '9', '4111', ' ', '-', '.', ':', '::', '(', ')', '+', '@', '_', '=', '"', "'", 'a', 'e', 'f', 'A', 'Z', 'k', 'eyJ',
    'eyJhbGciOiJIUzI1NiJ9', 'AKIA', 'AIza', 'sk-', 'xoxb-', 'ghp_', 'github_pat_', 'Bearer ', 'PRIVATE KEY', '-----BEGIN ', '-----', 'PassWord', 'api_key',
    'Token', '\u00a0', '\u2003', 'ö', '👋', 'GB82', 'WEST', 'example.com', '192.168.1.', 'fe80', '2001:db8', '\n', ',', '[REDACTED:email]', 'ABCDEFGHIJKLMNOP', '0123456789']
  const shapes = ['bob@example.com', '4111 1111 1111 1111', '5500-0000-0000-0004', '3782 822463 10005', 'GB82 WEST 1234 5698 7654 32', '10.1.2.3', 'fe80::1',
    '::ffff:1.2.3.4', '123-45-6789', '+44 20 7946 0958', '(415) 555-2671', '07700 900123', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig',
    'AKIAIOSFODNN7EXAMPLE', 'sk-proj-abcdefghijklmnopqrstuvwxyz012345', 'xoxb-123456789012-abcdefghij', 'password=hunter2', "client_secret='s3'"]
  const sets: DetectorName[][] = [[...DETECTOR_NAMES], ...DETECTOR_NAMES.map((n) => [n])]
  const fast = sets.map((s) => compileDetectors(s))
  const ref = sets.map((s) => compileDetectors(s, false))
  let hits = 0
  let diffs = 0
  for (let i = 0; i < 3000; i++) {
    let s = ''
    for (let k = rnd(10); k > 0; k--) s += rnd(6) === 0 ? shapes[rnd(shapes.length)] : atoms[rnd(atoms.length)]
    for (let k = 0; k < sets.length; k++) {
      const a = fast[k]!.replaceAll(s)
      const b = ref[k]!.replaceAll(s)
      hits += b.hits.length
      if (a.text !== b.text || a.hits.join() !== b.hits.join() || fast[k]!.firstMatch(s) !== ref[k]!.firstMatch(s)) {
        if (diffs++ < 5) t.fail(`${sets[k]!.join(',')}: ${JSON.stringify(s)} → ${JSON.stringify(a.text)}, every regex: ${JSON.stringify(b.text)}`)
      }
    }
  }
  t.equal(diffs, 0, 'no difference')
  t.ok(hits > 1000, `the corpus exercises the detectors (${hits} hits)`)
})
