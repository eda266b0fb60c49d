import { parseInterval } from '../backup/schedule.ts'
import { DwError } from '../errors.ts'

/**
 * `fleet` in config.json: how often this node publishes its status, and the
 * thresholds its fleet view (`dw fleet`, `GET /fleet`) judges each node by.
 * Durations are written as `backup.every` is ("90s", "30m", "1h", "7d");
 * `null` turns a threshold off. See docs/operations.md, "Fleet view".
 */
export interface FleetConfig {
  /** How often this node makes and pushes its status (default "1m"). */
  publishEvery?: string
  /** A node not heard from for this long is a warning (default "1h"), then critical (default "24h"). */
  warnAfter?: string | null
  criticalAfter?: string | null
  /** A node whose freshest link lags by this long (default "1h"; "24h"). */
  warnLag?: string | null
  criticalLag?: string | null
  /** ... or by this many changes (default 10,000; 100,000). */
  warnLagRecords?: number | null
  criticalLagRecords?: number | null
  /** Free disk below the larger of bytes and percent of the disk (default 1 GiB or 5 %; 256 MiB or 1 %). */
  warnFreeBytes?: number | null
  warnFreePercent?: number | null
  criticalFreeBytes?: number | null
  criticalFreePercent?: number | null
  /** Files below their copy target (default 1; critical off). */
  warnBelowTarget?: number | null
  criticalBelowTarget?: number | null
  /** Documents in quarantine (default 1; critical off). */
  warnQuarantined?: number | null
  criticalQuarantined?: number | null
}

/** The resolved settings: durations in ms, every threshold a number or null (off). */
export interface FleetSettings {
  publishEveryMs: number
  warnAfterMs: number | null
  criticalAfterMs: number | null
  warnLagMs: number | null
  criticalLagMs: number | null
  warnLagRecords: number | null
  criticalLagRecords: number | null
  warnFreeBytes: number | null
  warnFreePercent: number | null
  criticalFreeBytes: number | null
  criticalFreePercent: number | null
  warnBelowTarget: number | null
  criticalBelowTarget: number | null
  warnQuarantined: number | null
  criticalQuarantined: number | null
}

export const FLEET_DEFAULTS: Required<FleetConfig> = {
  publishEvery: '1m',
  warnAfter: '1h',
  criticalAfter: '24h',
  warnLag: '1h',
  criticalLag: '24h',
  warnLagRecords: 10_000,
  criticalLagRecords: 100_000,
  warnFreeBytes: 1024 ** 3,
  warnFreePercent: 5,
  criticalFreeBytes: 256 * 1024 ** 2,
  criticalFreePercent: 1,
  warnBelowTarget: 1,
  criticalBelowTarget: null,
  warnQuarantined: 1,
  criticalQuarantined: null
}

const DURATIONS = ['warnAfter', 'criticalAfter', 'warnLag', 'criticalLag'] as const
const COUNTS = ['warnLagRecords', 'criticalLagRecords', 'warnFreeBytes', 'criticalFreeBytes', 'warnBelowTarget', 'criticalBelowTarget', 'warnQuarantined', 'criticalQuarantined'] as const
const PERCENTS = ['warnFreePercent', 'criticalFreePercent'] as const

function invalid (message: string): DwError {
  return new DwError('CONFIG_INVALID', `config.json: ${message}`)
}

function duration (name: string, value: unknown): number {
  const ms = typeof value === 'string' ? parseInterval(value) : undefined
  if (ms === undefined) throw invalid(`fleet.${name} must be an interval such as "90s", "30m", "1h" or "7d" (at least 1s), or null for off; got ${JSON.stringify(value)}`)
  return ms
}

/** The defaults with config.json's `fleet` settings, each checked; CONFIG_INVALID names the first bad one. */
export function resolveFleetConfig (config: FleetConfig | undefined): FleetSettings {
  if (config !== undefined && (config === null || typeof config !== 'object' || Array.isArray(config))) {
    throw invalid('"fleet" must be an object, e.g. {"warnAfter": "1h", "criticalAfter": "24h"}')
  }
  for (const name of Object.keys(config ?? {})) {
    if (!(name in FLEET_DEFAULTS)) throw invalid(`fleet.${name} is not a fleet setting (known: ${Object.keys(FLEET_DEFAULTS).join(', ')})`)
  }
  const c: Required<FleetConfig> = { ...FLEET_DEFAULTS, ...config }
  const publishEveryMs = duration('publishEvery', c.publishEvery)
  if (publishEveryMs > 3_600_000) throw invalid(`fleet.publishEvery must be at most "1h", got ${JSON.stringify(c.publishEvery)}`)
  const out: Record<string, number | null> = { publishEveryMs }
  for (const name of DURATIONS) out[`${name}Ms`] = c[name] === null ? null : duration(name, c[name])
  for (const name of COUNTS) {
    const v = c[name]
    if (v !== null && (!Number.isSafeInteger(v) || v < (name.includes('Free') ? 0 : 1))) {
      throw invalid(`fleet.${name} must be a whole number${name.includes('Free') ? ' of bytes' : ' of at least 1'}, or null for off; got ${JSON.stringify(v)}`)
    }
    out[name] = v
  }
  for (const name of PERCENTS) {
    const v = c[name]
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100)) throw invalid(`fleet.${name} must be a number from 0 to 100, or null for off; got ${JSON.stringify(v)}`)
    out[name] = v
  }
  const settings = out as unknown as FleetSettings
  // A warning that comes after the critical verdict would never be seen.
  for (const [warn, critical, higherIsWorse] of [
    ['warnAfterMs', 'criticalAfterMs', true], ['warnLagMs', 'criticalLagMs', true], ['warnLagRecords', 'criticalLagRecords', true],
    ['warnBelowTarget', 'criticalBelowTarget', true], ['warnQuarantined', 'criticalQuarantined', true],
    ['warnFreeBytes', 'criticalFreeBytes', false], ['warnFreePercent', 'criticalFreePercent', false]
  ] as const) {
    const w = settings[warn]
    const cr = settings[critical]
    if (w === null || cr === null) continue
    if (higherIsWorse ? w > cr : w < cr) {
      const name = (k: string): string => k.replace(/Ms$/, '')
      throw invalid(`fleet.${name(warn)} must come before fleet.${name(critical)} (${higherIsWorse ? 'at most' : 'at least'} it)`)
    }
  }
  return settings
}
