import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { open, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { DwError } from '../../errors.ts'
import type { BlobStore } from '../blob-store.ts'
import type { BlobFetcher, FetchOptions } from './fetcher.ts'

const READ_BYTES = 1024 * 1024

/**
 * The blob's bytes as a stream: from the store if they are here, otherwise
 * fetched from a peer and passed on as they arrive (read back from the
 * partial file), so a client starts receiving a large file at once.
 * Rejects with BLOB_UNAVAILABLE, before any byte, when no peer has it, and
 * with CONFLICT when every peer that has it has another size than
 * `options.size`. If the source turns out to have lied, the stream errors:
 * the client got a truncated download, never a verified-looking wrong one.
 */
export async function streamAsFetched (sha256: string, store: BlobStore, fetcher: BlobFetcher, options: FetchOptions = {}): Promise<Readable> {
  if (options.force !== true && await store.has(sha256)) return await store.get(sha256)
  const done = fetcher.fetch(sha256, options)
  let settled = false
  done.then(() => { settled = true }, () => { settled = true })
  // Answer only once a source is sending (or the fetch failed or finished).
  while (true) {
    const running = fetcher.running(sha256)
    if (running === undefined && settled) {
      await done
      return await store.get(sha256)
    }
    if (running?.transfer.total !== undefined) break
    await Promise.race([done.catch(() => {}), once(fetcher, 'progress'), new Promise(resolve => setTimeout(resolve, 100))])
  }
  const generation = fetcher.running(sha256)?.generation() ?? 0
  return Readable.from(follow(sha256, store, fetcher, done, generation))
}

async function * follow (sha256: string, store: BlobStore, fetcher: BlobFetcher, done: Promise<void>, generation: number): AsyncGenerator<Uint8Array> {
  // Every byte is hashed on its way to the client and the last piece is held
  // back until the whole file checks out: whatever happens upstream, a client
  // never receives a complete response with the wrong bytes.
  const hash = createHash('sha256')
  let held: Uint8Array | undefined
  const pass = function * (piece: Uint8Array): Generator<Uint8Array> {
    hash.update(piece)
    if (held !== undefined) yield held
    held = piece
  }
  for await (const piece of passOn(sha256, store, fetcher, done, generation)) yield * pass(piece)
  if (hash.digest('hex') !== sha256) throw new DwError('INTEGRITY_MISMATCH', 'the bytes received for this file do not match it; download it again')
  if (held !== undefined) yield held
}

async function * passOn (sha256: string, store: BlobStore, fetcher: BlobFetcher, done: Promise<void>, generation: number): AsyncGenerator<Uint8Array> {
  let pos = 0
  // One handle for the whole transfer: it stays readable even after the
  // finished file is renamed into the store.
  let file: FileHandle | undefined
  try {
    while (true) {
      const running = fetcher.running(sha256)
      if (running === undefined) {
        await done
        yield * (await store.get(sha256, { offset: pos })) as AsyncIterable<Uint8Array>
        return
      }
      if (running.generation() !== generation) throw new DwError('INTEGRITY_MISMATCH', 'the peer sending this file sent bad bytes; download it again')
      if (running.transfer.done > pos) {
        file ??= await open(fetcher.partialPath(sha256), 'r').catch(() => undefined)
        if (file !== undefined) {
          const length = Math.min(running.transfer.done - pos, READ_BYTES)
          const { bytesRead, buffer } = await file.read(Buffer.allocUnsafe(length), 0, length, pos)
          if (bytesRead > 0) {
            pos += bytesRead
            yield buffer.subarray(0, bytesRead)
            continue
          }
        }
      }
      await Promise.race([once(fetcher, 'progress'), new Promise(resolve => setTimeout(resolve, 500))])
    }
  } finally {
    await file?.close()
  }
}
