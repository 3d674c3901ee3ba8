import { readFileSync } from 'node:fs'

/** package.json version, read once at load (src/ and dist/ are both one level below it). */
export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return '0.0.0'
  }
})()
