import { DwError } from '../errors.ts'

/** Custom JSON maps are replicated to every site forever: keep each one small. */
export const JSON_MAP_LIMIT = 64 * 1024

export function checkJsonSize (field: string, value: unknown): void {
  if (value === undefined) return
  if (Buffer.byteLength(JSON.stringify(value)) > JSON_MAP_LIMIT) {
    throw new DwError('PAYLOAD_TOO_LARGE', `${field} is larger than ${JSON_MAP_LIMIT / 1024} KiB`)
  }
  checkNumbers(field, value)
}

/**
 * Automerge stores a whole number as a 64-bit integer, which reads back as a
 * BigInt past 2^53 (and is clamped past 2^63): refuse such numbers rather
 * than store a value no JSON client can read back. Fractions are fine.
 */
export function checkNumbers (field: string, value: unknown, depth = 0): void {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new DwError('INVALID_INPUT', `${field} holds ${value}, a whole number too large to store exactly (the limit is ±${Number.MAX_SAFE_INTEGER})`)
    }
  } else if (value !== null && typeof value === 'object' && depth < 64) {
    for (const [k, v] of Object.entries(value)) checkNumbers(`${field}.${k}`, v, depth + 1)
  }
}

/**
 * A file name inside a version: one path segment, no traversal, no control
 * characters, at most 255 bytes. The name is also a URL path segment.
 */
export function checkFileName (raw: string): string {
  const name = raw.normalize('NFC')
  if (name === '' || name === '.' || name === '..' || /[/\\\u0000-\u001f\u007f]/.test(name) || Buffer.byteLength(name) > 255) {
    throw new DwError('INVALID_INPUT', `invalid file name ${JSON.stringify(raw).slice(0, 100)}: one path segment, no "/" or "\\", no control characters, at most 255 bytes`)
  }
  return name
}
