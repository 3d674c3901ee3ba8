import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type pg from 'pg'

/** `migrations/` at the package root (from src/collect or dist/collect alike). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url))

export interface Migration { readonly version: number; readonly name: string; readonly sql: string }

/** `NNN_name.sql` files in version order; a malformed name or a repeated version is an error. */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = []
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
    const m = /^(\d+)_([\w-]+)\.sql$/.exec(f)
    if (!m) throw new Error(`migration file name is not NNN_name.sql: ${f}`)
    const version = Number(m[1])
    if (out.some((x) => x.version === version)) throw new Error(`two migrations with version ${version}`)
    out.push({ version, name: m[2]!, sql: readFileSync(`${dir}/${f}`, 'utf8') })
  }
  return out.sort((a, b) => a.version - b.version)
}

/**
 * Applies the migrations not yet in `schema_migrations`, in order, each in its own
 * transaction together with its schema_migrations row. An advisory lock makes concurrent
 * `--migrate` runs (several collectors starting at once) wait for each other.
 */
export async function migrate(client: pg.ClientBase, dir = MIGRATIONS_DIR): Promise<number[]> {
  const applied: number[] = []
  await client.query('SELECT pg_advisory_lock(hashtext($1))', ['edgewarden_migrate'])
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version))
    for (const m of loadMigrations(dir)) {
      if (done.has(m.version)) continue
      await client.query('BEGIN')
      try {
        await client.query(m.sql)
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK')
        throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`)
      }
      applied.push(m.version)
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['edgewarden_migrate'])
  }
  return applied
}

/** The highest applied version, or 0 when the store was never migrated. */
export async function schemaVersion(client: pg.ClientBase): Promise<number> {
  const t = await client.query(`SELECT to_regclass('schema_migrations') AS t`)
  if (!t.rows[0]?.t) return 0
  const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')
  return r.rows[0]?.v ?? 0
}
