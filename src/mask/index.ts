import { randomBytes } from 'node:crypto'
import type { Config } from '../config/types.js'
import type { Logger } from '../logger.js'
import { loadMaskSpecs, masksOfEntries } from './load.js'
import { Masker } from './masker.js'
import { MaskPlan } from './plan.js'
import type { MaskSpec } from './types.js'

export type * from './types.js'
export { compileDetectors, DETECTOR_NAMES, type DetectorName, type CompiledDetectors } from './detectors.js'
export { Masker, type PublishMasking } from './masker.js'
export { MaskPlan } from './plan.js'
export { loadMaskSpecs, masksOfFile, masksOfEntries } from './load.js'

/**
 * The `hash` key: masking.hashKey when configured. Without one, a random key for this
 * process (tokens stay joinable until restart, never across gateways) and a warning — a
 * guessable default key would let anyone reverse hashed ids by trying candidates.
 */
export function hashKeyOf(config: Config, logger: Logger, specs: readonly MaskSpec[]): Buffer {
  const k = config.masking.hashKey?.reveal()
  if (k) return Buffer.from(k, 'utf8')
  if (specs.some((s) => s.fields.some((f) => f.action === 'hash'))) {
    logger.warn({ event: 'mask_hash_key_random' }, 'masking.hashKey is not set: hash tokens use a random per-process key and change on restart')
  }
  return processKey
}

const processKey = randomBytes(32)

/** Compiles masks from a list of specs with the config's key and defaults. */
export function buildPlan(config: Config, logger: Logger, specs: readonly MaskSpec[]): MaskPlan {
  return new MaskPlan(specs, { hashKey: hashKeyOf(config, logger, specs), onParseError: config.masking.onParseError })
}

/** Loads the masks from config.policies.dir and builds the gateway's Masker. */
export function createMasker(config: Config, logger: Logger): Masker {
  const specs = loadMaskSpecs(config.policies.dir)
  const plan = buildPlan(config, logger, specs)
  if (specs.length > 0) logger.info({ event: 'masks_loaded', masks: specs.map((s) => s.id) }, `${specs.length} mask(s) loaded`)
  return new Masker(plan, config.masking.cacheSize)
}

/**
 * Follows a policy swap (file reload, fleet bundle): the new policy document's `masks`
 * replace the running plan. Invalid masks keep the running plan and throw (EW_POLICY_INVALID);
 * a policy without a document (tests, placeholders) leaves the masks alone.
 */
export function masksFromPolicy(masker: Masker, config: Config, logger: Logger, policy: object): boolean {
  const doc = (policy as { document?: { masks?: readonly unknown[]; files?: readonly string[] } }).document
  if (!doc?.masks) return false
  const specs = masksOfEntries(doc.masks, `policy ${(doc.files ?? []).join(', ') || 'document'}`)
  masker.setPlan(buildPlan(config, logger, specs))
  logger.info({ event: 'masks_applied', masks: specs.map((s) => s.id) }, `${specs.length} mask(s) applied`)
  return true
}
