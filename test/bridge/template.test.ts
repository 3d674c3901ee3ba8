import t from 'tap'
import { compileTemplate, dropLevels } from '../../src/bridge/template.js'
import { isValidFilter, matchTopic } from '../../src/bridge/topic.js'
import { compileMappings } from '../../src/bridge/mappings.js'
import { upstreamConfig } from './util.js'

const ctx = { gatewayId: 'gw-01', fleet: 'acme' }

t.test('templates', async (t) => {
  t.equal(compileTemplate('fleet/${fleet}/${gateway.id}/${topic}', ctx, 'k')('site/1/dev/a/telemetry'), 'fleet/acme/gw-01/site/1/dev/a/telemetry')
  t.equal(compileTemplate('${topic:4}', ctx, 'k')('fleet/acme/gw-01/cmd/site/1/x'), 'site/1/x')
  t.equal(compileTemplate('${topic:4}', ctx, 'k')('fleet/acme/gw-01/cmd'), undefined, 'nothing left → undefined')
  t.equal(compileTemplate('${topic:4}', ctx, 'k')('fleet/acme/gw-01/cmd/'), undefined, 'empty rest → undefined')
  t.equal(compileTemplate('a/${topic:1}/b', ctx, 'k')('x/y/z'), 'a/y/z/b')
  t.equal(compileTemplate('static/${gateway.id}', ctx, 'k')('whatever'), 'static/gw-01')
  t.equal(compileTemplate('${ topic }', ctx, 'k')('a/b'), 'a/b', 'spaces inside braces')
  t.throws(() => compileTemplate('x/${secret}', ctx, 'upstream.out[0].remote'), { code: 'EW_CONFIG_INVALID', message: /upstream\.out\[0\]\.remote: unknown placeholder/ })
  t.throws(() => compileTemplate('x/+/${topic}', ctx, 'k'), { code: 'EW_CONFIG_INVALID' })
  t.throws(() => compileTemplate('', ctx, 'k'), { code: 'EW_CONFIG_INVALID' })
  t.equal(dropLevels('a/b/c', 0), 'a/b/c')
  t.equal(dropLevels('a/b/c', 2), 'c')
  t.equal(dropLevels('a/b/c', 3), undefined)
})

t.test('topic matching', async (t) => {
  const cases: [string, string, boolean][] = [
    ['a/b/c', 'a/b/c', true], ['a/+/c', 'a/b/c', true], ['a/+/c', 'a/b/d', false], ['a/#', 'a', true],
    ['a/#', 'a/b/c', true], ['#', 'a/b', true], ['#', '$SYS/x', false], ['+/x', '$warden/x', false],
    ['$warden/#', '$warden/status', true], ['a/+', 'a/', true], ['a/', 'a/', true], ['a', 'a/b', false],
    ['a/b', 'a', false], ['a/+/+', 'a/b', false], ['+', 'a', true], ['+', 'a/b', false], ['a//b', 'a//b', true],
    ['site/+/dev/+/telemetry', 'site/1/dev/d1/telemetry', true], ['site/+/dev/+/telemetry', 'site/1/dev/d1/telemetry/x', false],
    ['abc', 'abd', false], ['a/bc', 'a/b', false],
  ]
  for (const [f, topic, want] of cases) t.equal(matchTopic(f, topic), want, `${f} ~ ${topic}`)
  t.ok(isValidFilter('a/+/#'))
  t.notOk(isValidFilter('a/#/b'))
  t.notOk(isValidFilter('a/b+'))
  t.notOk(isValidFilter(''))
})

t.test('mappings compile once and name the bad key', async (t) => {
  const base = upstreamConfig('mqtt://x')
  const m = compileMappings({ ...base, out: [{ local: 'site/#', remote: 'up/${topic}', qos: 1 }], in: [{ remote: 'cmd/#', local: '${topic:1}', qos: 1 }] }, ctx)
  t.ok(m.bridged('site/1'))
  t.notOk(m.bridged('other/1'))
  t.throws(() => compileMappings({ ...base, out: [{ local: 'site/#/x', remote: 'up', qos: 1 }], in: [] }, ctx), { message: /upstream\.out\[0\]\.local/ })
  t.throws(() => compileMappings({ ...base, out: [], in: [{ remote: 'cmd/#', local: '${nope}', qos: 1 }] }, ctx), { message: /upstream\.in\[0\]\.local/ })
})
