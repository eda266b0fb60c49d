import { DwError, isDwError } from '../../errors.ts'
import { FIRST_MESSAGE_MS, readFirst, type MessageStream } from '../../message-stream.ts'
import type { BlobStore } from '../blob-store.ts'
import { CHUNK_BYTES, parseBlobRequest } from './messages.ts'

export interface BlobServeOptions {
  /**
   * Whether this peer may have this blob: only blobs referenced by records
   * it is allowed to receive are ever served.
   */
  mayServe: (sha256: string) => Promise<boolean>
  /** Bytes sent, for status. */
  onBytes?: (n: number) => void
  /** How long the peer has to send its request. @default FIRST_MESSAGE_MS */
  firstMessageMs?: number
}

/**
 * Hashes looked up at once for one `has`: one at a time, a busy node took
 * ~0.5 s a hash and the asker (which waits a few seconds) took it for a
 * node without them; all at once, a request of 1,024 would be 1,024
 * requests to an S3 store.
 */
const HAS_AT_ONCE = 16

/** `fn` over `items`, at most `limit` running at once; results in order. */
async function mapLimited<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** Answers one request on a `/dw/blob/1.0.0` stream. */
export async function serveBlob (stream: MessageStream, store: BlobStore, options: BlobServeOptions): Promise<void> {
  const first = await readFirst(stream, options.firstMessageMs ?? FIRST_MESSAGE_MS)
  if (first.done === true) throw new DwError('INVALID_MESSAGE', 'stream ended before a request')
  const request = parseBlobRequest(first.value)
  if (request.t === 'has') {
    const held = await mapLimited(request.hashes, HAS_AT_ONCE, async sha => await options.mayServe(sha) && await store.has(sha))
    await stream.send({ t: 'have', hashes: request.hashes.filter((_, i) => held[i]) })
    await stream.close()
    return
  }
  const { sha256, offset } = request
  const info = await options.mayServe(sha256) ? await store.stat(sha256) : undefined
  if (info === undefined) {
    // Unreferenced and absent look the same: a peer learns nothing from probing.
    await stream.send({ t: 'error', code: 'BLOB_NOT_FOUND', message: `no blob ${sha256} to share` })
    await stream.close()
    return
  }
  if (offset > info.size) {
    await stream.send({ t: 'error', code: 'INVALID_INPUT', message: `offset ${offset} is past the end (${info.size})` })
    await stream.close()
    return
  }
  await stream.send({ t: 'blob', size: info.size })
  const source = await store.get(sha256, { offset })
  try {
    for await (const piece of source) {
      const buf = piece as Uint8Array
      for (let at = 0; at < buf.length; at += CHUNK_BYTES) {
        const data = buf.subarray(at, Math.min(buf.length, at + CHUNK_BYTES))
        await stream.send({ t: 'chunk', data })
        options.onBytes?.(data.length)
      }
    }
  } catch (err) {
    source.destroy()
    if (isDwError(err)) throw err
    throw new DwError('BLOB_UNAVAILABLE', `reading ${sha256} failed`, { cause: err })
  }
  await stream.send({ t: 'end' })
  await stream.close()
}
