import { DwError } from '../../errors.ts'
import { isSha256Hex } from '../sha256.ts'

/**
 * Wire messages of `/dw/blob/1.0.0`: one request per stream.
 *
 *   get {sha256, offset}       ->  blob {size}, chunk {data} (up to 1 MiB each)..., end
 *   get {sha256, offset, ack}  ->  blob {size, ack}, chunk {data} (up to 1 MiB each)..., end
 *     after every chunk:       <-  ack {bytes}
 *                              ->  error {code, message}
 *   has {hashes}               ->  have {hashes}
 *
 * `offset` lets a receiver resume a partial download where it stopped.
 *
 * `ack` (issue 11) is flow control, added without a new protocol version:
 * a fetcher that can acknowledge says `ack: true`; a server that reads
 * acknowledgements answers `blob {size, ack: true}`, and only then does the
 * fetcher send `ack {bytes}` (the data bytes it has taken in on this
 * stream), after every chunk: the server may wait for one before it sends
 * more, so a fetcher that acknowledged less often could stall the transfer.
 * The server keeps what is unacknowledged within a window of about a
 * quarter of a second of data (send-window.ts), so a sync message on the
 * same connection never queues behind megabytes of file.
 *
 * Each side builds messages from the fields it knows, so an older server
 * never sees the request's flag (and never reads after the request), and an
 * older fetcher never sees the answer's: either pairing streams as before.
 * The answer's flag matters: acknowledgements sent to a server that never
 * reads them would pile up in its stream until its read buffer paused the
 * stream (after tens of thousands of them: a file of tens of GB), and the
 * fetcher's next `ack` would then block its reading.
 */
export const BLOB_PROTOCOL = '/dw/blob/1.0.0'
export const BLOB_PROTOCOL_VERSION = 1
/** Larger chunks mean fewer messages and allocations per byte; well under the Yamux window. */
export const CHUNK_BYTES = 1024 * 1024
export const MAX_BLOB_MESSAGE = CHUNK_BYTES + 1024
export const MAX_HAS = 1024

export type BlobRequest =
  | { t: 'get', v: number, sha256: string, offset: number, ack?: true }
  | { t: 'has', v: number, hashes: string[] }

/** What a fetcher that asked with `ack: true` sends while chunks arrive, once the server said it reads them. */
export interface BlobAck { t: 'ack', bytes: number }

export type BlobResponse =
  | { t: 'blob', size: number, ack?: true }
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
    if (m.ack !== undefined && typeof m.ack !== 'boolean') bad('ack must be a boolean')
    const get: BlobRequest = { t: 'get', v: m.v, sha256: m.sha256, offset: count(m.offset, 'offset') }
    if (m.ack === true) get.ack = true
    return get
  }
  if (m.t === 'has') return { t: 'has', v: m.v, hashes: hashes(m.hashes) }
  return bad('unknown request type')
}

export function parseBlobResponse (raw: unknown): BlobResponse {
  const m = record(raw)
  switch (m.t) {
    case 'blob': {
      if (m.ack !== undefined && typeof m.ack !== 'boolean') bad('ack must be a boolean')
      const blob: BlobResponse = { t: 'blob', size: count(m.size, 'size') }
      if (m.ack === true) blob.ack = true
      return blob
    }
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

/**
 * One acknowledgement. Whether its count makes sense (never less than the
 * last, never more than was sent) is the send window's to judge.
 */
export function parseBlobAck (raw: unknown): BlobAck {
  const m = record(raw)
  if (m.t !== 'ack') bad(`expected ack, got ${typeof m.t === 'string' ? m.t.slice(0, 16) : typeof m.t}`)
  return { t: 'ack', bytes: count(m.bytes, 'bytes') }
}
