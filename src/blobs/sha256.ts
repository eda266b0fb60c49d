import { DwError } from '../errors.ts'

const SHA256_HEX = /^[0-9a-f]{64}$/

/** A blob's name: the lowercase hex sha256 of its bytes. */
export function isSha256Hex (s: unknown): s is string {
  return typeof s === 'string' && SHA256_HEX.test(s)
}

/** Throws DwError INVALID_INPUT unless `s` is a lowercase hex sha256. */
export function assertSha256Hex (s: unknown): asserts s is string {
  if (!isSha256Hex(s)) {
    throw new DwError('INVALID_INPUT', 'blob id must be a sha256 as 64 lowercase hex characters', { details: { sha256: s } })
  }
}
