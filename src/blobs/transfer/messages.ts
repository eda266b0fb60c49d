import { DwError } from '../../errors.ts'
import { isSha256Hex } from '../sha256.ts'

/**
 * Wire messages of `/dw/blob/1.0.0`: one request per stream.
 *
 *   get {sha256, offset}  ->  blob {size}, chunk {data} (up to 1 MiB each)..., end
 *                         ->  error {code, message}
 *   has {hashes}          ->  have {hashes}
 *
 * `offset` lets a receiver resume a partial download where it stopped.
 */
export const BLOB_PROTOCOL = '/dw/blob/1.0.0'
export const BLOB_PROTOCOL_VERSION = 1
/** Larger chunks mean fewer messages and allocations per byte; well under the Yamux window. */
export const CHUNK_BYTES = 1024 * 1024
export const MAX_BLOB_MESSAGE = CHUNK_BYTES + 1024
export const MAX_HAS = 1024

export type BlobRequest =
  | { t: 'get', v: number, sha256: string, offset: number }
  | { t: 'has', v: number, hashes: string[] }

export type BlobResponse =
  | { t: 'blob', size: number }
  | { t: 'chunk', data: Uint8Array }
  | { t: 'end' }
  | { t: 'have', hashes: string[] }
  | { t: 'error', code: string, message: string }

function bad (what: string): never {
  throw new DwError('INVALID_MESSAGE', `malformed blob message: ${what}`)
}

function record (m: unknown): Record<string, unknown> {
  if (typeof m !== 'object' || m === null || Array.isArray(m) || m instanceof Uint8Array) bad('not a map')
  return m as Record<string, unknown>
}

function count (v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${field} must be a non-negative integer`)
  return v
}

function hashes (v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_HAS || !v.every(isSha256Hex)) bad(`hashes must be at most ${MAX_HAS} sha256 hex strings`)
  return v as string[]
}

export function parseBlobRequest (raw: unknown): BlobRequest {
  const m = record(raw)
  if (m.v !== BLOB_PROTOCOL_VERSION) throw new DwError('INVALID_MESSAGE', `unsupported blob protocol version ${String(m.v)}`)
  if (m.t === 'get') {
    if (!isSha256Hex(m.sha256)) bad('sha256')
    return { t: 'get', v: m.v, sha256: m.sha256, offset: count(m.offset, 'offset') }
  }
  if (m.t === 'has') return { t: 'has', v: m.v, hashes: hashes(m.hashes) }
  return bad('unknown request type')
}

export function parseBlobResponse (raw: unknown): BlobResponse {
  const m = record(raw)
  switch (m.t) {
    case 'blob': return { t: 'blob', size: count(m.size, 'size') }
    case 'chunk':
      if (!(m.data instanceof Uint8Array) || m.data.length === 0 || m.data.length > CHUNK_BYTES) bad('chunk data')
      return { t: 'chunk', data: m.data }
    case 'end': return { t: 'end' }
    case 'have': return { t: 'have', hashes: hashes(m.hashes) }
    case 'error':
      if (typeof m.code !== 'string' || typeof m.message !== 'string') bad('error')
      return { t: 'error', code: m.code.slice(0, 64), message: m.message.slice(0, 500) }
    default: return bad('unknown response type')
  }
}
