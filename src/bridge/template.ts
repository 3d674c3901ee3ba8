import { ewError } from '../errors.js'

/** What a template may name besides the topic. */
export interface TemplateContext {
  readonly gatewayId: string
  readonly fleet: string
}

/** Renders a topic from a source topic; undefined when the source has too few levels. */
export type RenderTopic = (topic: string) => string | undefined

type Part = string | { readonly drop: number }

const PLACEHOLDER = /\$\{([^}]*)\}/g

/**
 * Compiles `fleet/${fleet}/${gateway.id}/${topic}` once into literal parts and topic
 * slices; `${topic:N}` drops N leading levels. Unknown placeholders and wildcards in the
 * literal text are configuration errors (`where` names the key).
 */
export function compileTemplate(template: string, ctx: TemplateContext, where: string): RenderTopic {
  const parts: Part[] = []
  let last = 0
  let literal = ''
  for (const m of template.matchAll(PLACEHOLDER)) {
    literal += template.slice(last, m.index)
    last = m.index! + m[0].length
    const name = m[1]!.trim()
    if (name === 'gateway.id') literal += ctx.gatewayId
    else if (name === 'fleet') literal += ctx.fleet
    else {
      const tm = /^topic(?::(\d{1,3}))?$/.exec(name)
      if (!tm) throw ewError('EW_CONFIG_INVALID', `${where}: unknown placeholder \${${name}} (use \${topic}, \${topic:N}, \${gateway.id}, \${fleet})`)
      if (literal) parts.push(literal)
      literal = ''
      parts.push({ drop: tm[1] ? Number(tm[1]) : 0 })
    }
  }
  literal += template.slice(last)
  if (literal) parts.push(literal)
  for (const p of parts) {
    if (typeof p === 'string' && /[+#\u0000]/.test(p)) throw ewError('EW_CONFIG_INVALID', `${where}: a topic template may not contain + # or NUL outside placeholders`)
  }
  if (parts.length === 0) throw ewError('EW_CONFIG_INVALID', `${where}: empty topic template`)
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0]
    return () => constant
  }
  if (parts.length === 1) {
    const drop = (parts[0] as { drop: number }).drop
    return (topic) => dropLevels(topic, drop)
  }
  return (topic) => {
    let out = ''
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!
      if (typeof p === 'string') out += p
      else {
        const s = dropLevels(topic, p.drop)
        if (s === undefined) return undefined
        out += s
      }
    }
    return out
  }
}

/** `a/b/c` minus 1 level is `b/c`; undefined when nothing is left. */
export function dropLevels(topic: string, n: number): string | undefined {
  let i = 0
  for (let k = 0; k < n; k++) {
    const j = topic.indexOf('/', i)
    if (j === -1) return undefined
    i = j + 1
  }
  return i === 0 ? topic : i >= topic.length ? undefined : topic.slice(i)
}
