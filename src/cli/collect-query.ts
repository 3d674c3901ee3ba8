import { ewError } from '../errors.js'
import { recordToJson, type RecordQuery } from '../journal/query.js'
import { queryFleet } from '../collect/query.js'

/** `audit query --store postgres://… [--gateway a,b]`: the fleet store, same filters and lines as the local query. */
export async function queryStoreCommand(store: string, q: RecordQuery, gateway: string | undefined, limit: number, write: (line: string) => unknown): Promise<void> {
  if (!/^postgres(ql)?:\/\//.test(store)) throw ewError('EW_USAGE', '--store: only postgres://… stores can be queried')
  const gateways = gateway?.split(',').map((s) => s.trim()).filter(Boolean)
  for await (const r of queryFleet(store, { ...q, gateways, limit })) write(recordToJson(r))
}
