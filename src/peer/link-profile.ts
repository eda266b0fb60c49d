import { DwError } from '../errors.ts'

/**
 * How this node treats its link to one peer (docs/operations.md, "Link
 * profiles"). Local to this node, like the rest of the peer book: the
 * other site keeps its own profile of the same link.
 */
export interface LinkProfile {
  /** Bytes per second, each direction: file bytes received and sent, sync frames sent. */
  maxRate?: number
  /** `HH:MM-HH:MM` in local time, possibly across midnight: background file transfers from this peer only inside it. */
  filesWindow?: string
  /** Files are never fetched from this peer in the background. */
  metered?: true
}

/** A rate cap at or below this (1 Mbit/s) marks a thin link. */
export const THIN_RATE = 125_000

/**
 * A link worth spending the sender's CPU on to save bytes: metered, or
 * capped at 1 Mbit/s or less (the sync compresses harder on it).
 */
export function isThinLink (profile: Readonly<LinkProfile> | undefined): boolean {
  return profile?.metered === true || (profile?.maxRate !== undefined && profile.maxRate <= THIN_RATE)
}

/** A change to a profile: `null` clears a setting, `metered: false` clears `metered`. */
export interface LinkPatch {
  maxRate?: number | null
  filesWindow?: string | null
  metered?: boolean
}

/**
 * 8 kbit/s. Paced frames go out in slices of about an eighth of a second
 * of bytes (at least 1 KiB), so even at the floor a peer waiting for bytes
 * sees some every second or two, well inside its idle timeouts.
 */
export const MIN_RATE = 1000
/** 80 Gbit/s: anything faster is no cap at all. */
export const MAX_RATE = 10_000_000_000

const BIT_PREFIXES: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 }
const BYTE_UNITS: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 }

/**
 * A rate in bytes per second from `256kbit`, `1mbit`, `2Mbps`, `64kB`,
 * `2MB`, `512KiB` (an optional `/s` after the unit) or a plain number of
 * bytes per second. Bits use decimal prefixes, as links are sold; a lone
 * lower-case `b` (`64kb`) is refused as ambiguous rather than guessed.
 */
export function parseRate (text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)(?:\/s)?\s*$/.exec(text)
  const examples = 'give a number and a unit, e.g. 256kbit, 1mbit, 64kB or 2MB'
  if (m === null) throw new DwError('INVALID_INPUT', `"${text}" is not a rate: ${examples}`)
  const value = Number(m[1])
  const unit = m[2] as string
  const lower = unit.toLowerCase()
  let bytesPerSecond: number
  if (unit === '') {
    bytesPerSecond = value
  } else if (/^[kmg]?(bit|bps)$/.test(lower)) {
    bytesPerSecond = value * (BIT_PREFIXES[lower.replace(/(bit|bps)$/, '')] as number) / 8
  } else if (BYTE_UNITS[unit] !== undefined) {
    bytesPerSecond = value * BYTE_UNITS[unit]
  } else if (/^[kmg]?i?b$/.test(lower)) {
    const prefix = lower.slice(0, -1)
    const asBytes = ({ '': 'B', k: 'kB', m: 'MB', g: 'GB', ki: 'KiB', mi: 'MiB', gi: 'GiB' } as Record<string, string>)[prefix] as string
    throw new DwError('INVALID_INPUT', `"${text}" is ambiguous: write ${m[1]}${prefix.slice(0, 1)}bit for bits or ${m[1]}${asBytes} for bytes per second`)
  } else {
    throw new DwError('INVALID_INPUT', `"${text}" has an unknown unit "${unit}": ${examples}`)
  }
  return checkRate(Math.round(bytesPerSecond), text)
}

/** A rate in bytes per second within the bounds, or INVALID_INPUT naming them. */
export function checkRate (bytesPerSecond: number, shown: string = `${bytesPerSecond} bytes/s`): number {
  if (!Number.isInteger(bytesPerSecond) || bytesPerSecond < MIN_RATE || bytesPerSecond > MAX_RATE) {
    throw new DwError('INVALID_INPUT', `a rate of ${shown} is out of range: from 8kbit (${MIN_RATE} bytes/s) to 80gbit (${MAX_RATE} bytes/s)`)
  }
  return bytesPerSecond
}

/** `256 kbit/s`, `1.5 Mbit/s`: a rate as links are sold. */
export function formatRate (bytesPerSecond: number): string {
  const bits = bytesPerSecond * 8
  for (const [unit, scale] of [['Gbit', 1e9], ['Mbit', 1e6], ['kbit', 1e3]] as const) {
    if (bits >= scale) return `${Number((bits / scale).toFixed(1))} ${unit}/s`
  }
  return `${bits} bit/s`
}

/** A window in minutes since local midnight; `start > end` wraps past midnight. */
export interface FilesWindow { start: number, end: number }

/** `HH:MM-HH:MM` (hours 0-23) to minutes; the window ends just before `end`. */
export function parseWindow (text: string): FilesWindow {
  const m = /^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text)
  if (m === null) throw new DwError('INVALID_INPUT', `"${text}" is not a time window: give HH:MM-HH:MM in local time, e.g. 22:00-06:00`)
  const [h1, m1, h2, m2] = m.slice(1).map(Number) as [number, number, number, number]
  if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59) throw new DwError('INVALID_INPUT', `"${text}" is not a time window: hours run 0-23 and minutes 0-59`)
  const window = { start: h1 * 60 + m1, end: h2 * 60 + m2 }
  if (window.start === window.end) throw new DwError('INVALID_INPUT', `"${text}" is an empty window: to allow any time, clear the window (none)`)
  return window
}

/** The window as stored and shown: `22:00-06:00`. */
export function formatWindow (window: FilesWindow): string {
  const hhmm = (minutes: number): string => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`
  return `${hhmm(window.start)}-${hhmm(window.end)}`
}

/** Whether local time `at` falls inside the window (start included, end excluded). */
export function inWindow (window: FilesWindow, at: Date): boolean {
  const minute = at.getHours() * 60 + at.getMinutes()
  return window.start < window.end
    ? minute >= window.start && minute < window.end
    : minute >= window.start || minute < window.end
}

/**
 * Why files may not come from a peer with this profile in the background
 * at `at`, or undefined when they may. Background means nobody is waiting:
 * pins, copies and the queue of files waiting for a peer. A user's
 * download does not ask.
 */
export function backgroundRefusal (profile: LinkProfile | undefined, at: Date): string | undefined {
  if (profile === undefined) return undefined
  if (profile.metered === true) return 'metered'
  if (profile.filesWindow !== undefined && !inWindow(parseWindow(profile.filesWindow), at)) return `outside its files window ${profile.filesWindow}`
  return undefined
}

/**
 * The profile after `patch`, validated as a whole before anything changes;
 * undefined when nothing is left set.
 */
export function patchLink (profile: LinkProfile | undefined, patch: LinkPatch): LinkProfile | undefined {
  const next: LinkProfile = { ...profile }
  if (patch.maxRate === null) delete next.maxRate
  else if (patch.maxRate !== undefined) next.maxRate = checkRate(patch.maxRate)
  if (patch.filesWindow === null) delete next.filesWindow
  else if (patch.filesWindow !== undefined) next.filesWindow = formatWindow(parseWindow(patch.filesWindow))
  if (patch.metered === false) delete next.metered
  else if (patch.metered === true) next.metered = true
  return Object.keys(next).length === 0 ? undefined : next
}

/** `256 kbit/s, files 22:00-06:00, metered`, or `-` for no profile. */
export function formatLink (profile: LinkProfile | undefined): string {
  const parts: string[] = []
  if (profile?.maxRate !== undefined) parts.push(formatRate(profile.maxRate))
  if (profile?.filesWindow !== undefined) parts.push(`files ${profile.filesWindow}`)
  if (profile?.metered === true) parts.push('metered')
  return parts.length === 0 ? '-' : parts.join(', ')
}
