import { isAbsolute } from 'node:path'

/** `backup` in config.json: an archive every `every`, the newest `keep` of them kept, in directory `to`. */
export interface BackupConfig { every?: string, keep?: number, to?: string }

export interface BackupSchedule { everyMs: number, keep: number, to: string }

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "90s", "30m", "24h", "7d": what an admin writes for an interval. */
export function parseInterval (text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/i.exec(text)
  if (m === null) return undefined
  const ms = Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number)
  return Number.isFinite(ms) && ms >= 1000 ? Math.round(ms) : undefined
}

/** The schedule config.json asks for, or undefined for none; a clear message for anything it cannot use. */
export function resolveBackupSchedule (config: BackupConfig | undefined): BackupSchedule | undefined {
  if (config === undefined) return undefined
  if (typeof config !== 'object' || config === null) throw new Error('"backup" must be an object: {"every": "24h", "keep": 7, "to": "/var/backups/dw"}')
  if (config.every === undefined) return undefined
  const everyMs = typeof config.every === 'string' ? parseInterval(config.every) : undefined
  if (everyMs === undefined) throw new Error(`"backup.every" must be an interval such as "6h", "24h" or "7d" (at least 1s), got ${JSON.stringify(config.every)}`)
  const keep = config.keep ?? 7
  if (!Number.isInteger(keep) || keep < 1 || keep > 1000) throw new Error(`"backup.keep" must be a whole number from 1 to 1000, got ${JSON.stringify(config.keep)}`)
  if (typeof config.to !== 'string' || !isAbsolute(config.to)) throw new Error(`"backup.to" must be an absolute directory path, got ${JSON.stringify(config.to)}`)
  return { everyMs, keep, to: config.to }
}
