import { Counter, Gauge, type Registry } from 'prom-client'
import type { Inventory } from './inventory.js'
import type { FlagName } from './types.js'

/** `edgewarden_inventory_flags_total{flag}` (raised) and `edgewarden_inventory_flags_open{flag}` (not acknowledged). */
export function inventoryMetrics(registry: Registry, inventory: () => Inventory | undefined): (flag: FlagName) => void {
  const raised = new Counter({ name: 'edgewarden_inventory_flags_total', help: 'shadow flags raised', labelNames: ['flag'] as const, registers: [registry] })
  new Gauge({
    name: 'edgewarden_inventory_flags_open', help: 'shadow flags not acknowledged', labelNames: ['flag'] as const, registers: [registry],
    collect() {
      this.reset()
      for (const [flag, n] of inventory()?.openFlags() ?? []) this.set({ flag }, n)
    },
  })
  return (flag) => raised.inc({ flag })
}
