import t from 'tap'
import { agentSignal, formatOf } from '../../src/inventory/sniff.js'
import { foreignCommands } from '../../src/inventory/flags.js'
import { encodeMsgpack } from '../../src/mask/codecs.js'

const b = (s: string) => Buffer.from(s)

t.test('payload format sniff', async (t) => {
  t.equal(formatOf(b('{"t":1}')), 0)
  t.equal(formatOf(b('  [1,2]')), 0)
  t.equal(formatOf(encodeMsgpack({ t: 1 })), 1)
  t.equal(formatOf(encodeMsgpack([1, 2])), 1)
  t.equal(formatOf(b('boot ok')), 2)
  t.equal(formatOf(b('température 21°')), 2)
  t.equal(formatOf(b('')), 2)
  t.equal(formatOf(Buffer.from([0x00, 0x01, 0xff])), 3)
  t.equal(formatOf(Buffer.from([0x41, 0x00])), 3)
})

t.test('agent traffic: prompt/completion shapes and model-provider keys; ordinary telemetry is not', async (t) => {
  t.ok(agentSignal(b('{"role":"user","content":"turn off pump 3"}')))
  t.ok(agentSignal(b('{"model":"x","messages":[]}')))
  t.ok(agentSignal(b('{"choices":[{"text":"ok"}]}')))
  t.ok(agentSignal(b('config: sk-proj-abcdefghijklmnopqrstuvwxyz0123')))
  t.notOk(agentSignal(b('{"t":21.5,"h":40}')))
  t.notOk(agentSignal(b('{"role":"pump","state":"on"}')))
  t.notOk(agentSignal(b('password=hunter2')), 'a secret, but not a model provider\'s')
  t.notOk(agentSignal(Buffer.alloc(100_000, 0x61)), 'large payloads are not scanned')
})

t.test('foreign command topics', async (t) => {
  t.ok(foreignCommands('device', 'd1', 'd1', 'site/1/dev/+/cmd/#'))
  t.ok(foreignCommands('device', 'd1', 'd1', 'site/1/dev/d2/cmd/reboot'))
  t.ok(foreignCommands('device', 'd1', 'd1', '#'))
  t.ok(foreignCommands('device', 'd1', 'd1', 'site/1/dev/#'))
  t.notOk(foreignCommands('device', 'd1', 'd1', 'site/1/dev/d1/cmd/#'))
  t.notOk(foreignCommands('device', 'd1', 'x', 'site/1/dev/d1/cmd/#'), 'by sub too')
  t.notOk(foreignCommands('device', 'd1', 'd1', 'site/1/dev/+/telemetry'))
  t.notOk(foreignCommands('service', 's', 's', 'site/1/dev/+/cmd/#'), 'only devices')
})
