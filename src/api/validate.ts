import { DwError } from '../errors.ts'

/** Custom JSON maps are replicated to every site forever: keep each one small. */
export const JSON_MAP_LIMIT = 64 * 1024

export function checkJsonSize (field: string, value: unknown): void {
  if (value === undefined) return
  if (Buffer.byteLength(JSON.stringify(value)) > JSON_MAP_LIMIT) {
    throw new DwError('PAYLOAD_TOO_LARGE', `${field} is larger than ${JSON_MAP_LIMIT / 1024} KiB`)
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
