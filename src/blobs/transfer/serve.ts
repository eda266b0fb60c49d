import { DwError, isDwError } from '../../errors.ts'
import { FIRST_MESSAGE_MS, readFirst, type MessageStream } from '../../message-stream.ts'
import type { BlobStore } from '../blob-store.ts'
import { CHUNK_BYTES, parseBlobAck, parseBlobRequest } from './messages.ts'
import { SendWindow } from './send-window.ts'

/**
 * Whether records to a peer go before file bytes (peer/link-priority.ts
 * implements it): resolves when the next piece of a file may go, at once
 * when no records are moving to that peer, and within a bounded wait when
 * some are.
 */
export interface RecordsFirst {
  yieldToRecords: (peerId: string, signal?: AbortSignal) => Promise<void>
}

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
  /** The peer that asked: whose records `priority` lets go first. */
  peer?: string
  /** Records to the same peer go before each piece of a file (issue 11). */
  priority?: RecordsFirst
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
  // A fetcher that acknowledges gets pieces within a window that follows
  // the link (send-window.ts); one that does not (older) gets 1 MiB chunks
  // as fast as the stream takes them, as before. Both wait for records to
  // the same peer before each piece.
  const window = request.ack === true ? new SendWindow() : undefined
  await stream.send(window === undefined ? { t: 'blob', size: info.size } : { t: 'blob', size: info.size, ack: true })
  if (window !== undefined) readAcks(stream, window)
  const { peer, priority } = options
  const source = await store.get(sha256, { offset })
  try {
    for await (const piece of source) {
      const buf = piece as Uint8Array
      for (let at = 0; at < buf.length;) {
        const n = Math.min(buf.length - at, window?.piece ?? CHUNK_BYTES)
        await window?.room(n)
        if (peer !== undefined) await priority?.yieldToRecords(peer)
        const data = buf.subarray(at, at + n)
        // Counted before it is handed over: an acknowledgement may come back before `send` resolves.
        window?.sending(n)
        await stream.send({ t: 'chunk', data })
        options.onBytes?.(n)
        at += n
      }
    }
  } catch (err) {
    source.destroy()
    // A bad acknowledgement aborts the stream, and the send or wait it
    // interrupts fails with the stream's error: the violation is the cause.
    const failure = window?.failure
    if (isDwError(failure, 'INVALID_MESSAGE')) throw failure
    if (isDwError(err)) throw err
    throw new DwError('BLOB_UNAVAILABLE', `reading ${sha256} failed`, { cause: err })
  }
  await stream.send({ t: 'end' })
  await stream.close()
}

/**
 * Reads the fetcher's acknowledgements into `window` while the transfer
 * runs. Anything else, a count that goes back or past what was sent, is a
 * protocol violation: the window fails (the sender stops) and the stream
 * is aborted. A fetcher that ends its side has nothing more to say: a
 * sender still waiting for room would wait for ever, so the window fails
 * then too.
 */
function readAcks (stream: MessageStream, window: SendWindow): void {
  void (async () => {
    while (true) {
      const next = await stream.read()
      if (next.done === true) {
        window.fail(new DwError('INVALID_MESSAGE', 'the fetcher ended its side of the stream before the transfer ended'))
        return
      }
      window.ack(parseBlobAck(next.value).bytes)
    }
  })().catch((err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err))
    window.fail(error)
    stream.abort(error)
  })
}
