import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { DwError } from '../errors.ts'
import { abortableIterable } from '../abortable.ts'
import type { BlobInfo, BlobStore, PutOptions } from './blob-store.ts'
import { assertSha256Hex } from './sha256.ts'

/** Blobs in a Map, for fast unit tests; same contract as the filesystem store. */
export class MemoryBlobStore implements BlobStore {
  readonly #blobs = new Map<string, Buffer>()

  async put (source: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<BlobInfo & { existed: boolean }> {
    const { expectedSha256, signal } = options
    if (expectedSha256 !== undefined) assertSha256Hex(expectedSha256)
    const hash = createHash('sha256')
    const chunks: Buffer[] = []
    for await (const chunk of abortableIterable<unknown>(source, signal)) {
      if (!(chunk instanceof Uint8Array)) {
        throw new DwError('INVALID_INPUT', 'blob source must yield Uint8Array chunks')
      }
      hash.update(chunk)
      chunks.push(Buffer.from(chunk))
    }
    const bytes = Buffer.concat(chunks)
    const sha256 = hash.digest('hex')
    if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
      throw new DwError('INTEGRITY_MISMATCH', 'blob content does not match the expected sha256', {
        details: { expected: expectedSha256, actual: sha256, size: bytes.byteLength }
      })
    }
    const existed = this.#blobs.has(sha256)
    if (!existed) this.#blobs.set(sha256, bytes)
    return { sha256, size: bytes.byteLength, existed }
  }

  async has (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return this.#blobs.has(sha256)
  }

  async stat (sha256: string): Promise<BlobInfo | undefined> {
    assertSha256Hex(sha256)
    const bytes = this.#blobs.get(sha256)
    return bytes === undefined ? undefined : { sha256, size: bytes.byteLength }
  }

  async get (sha256: string, options: { offset?: number } = {}): Promise<Readable> {
    assertSha256Hex(sha256)
    const offset = options.offset ?? 0
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new DwError('INVALID_INPUT', 'offset must be a non-negative integer', { details: { offset } })
    }
    const bytes = this.#blobs.get(sha256)
    if (bytes === undefined) throw new DwError('BLOB_NOT_FOUND', `blob ${sha256} not found`, { details: { sha256 } })
    if (offset > bytes.byteLength) {
      throw new DwError('INVALID_INPUT', 'offset is past the end of the blob', { details: { offset, size: bytes.byteLength } })
    }
    // A copy, so a reader that mutates its chunk cannot corrupt the stored blob.
    const rest = Buffer.from(bytes.subarray(offset))
    return Readable.from(rest.byteLength === 0 ? [] : [rest], { objectMode: false })
  }

  async delete (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return this.#blobs.delete(sha256)
  }

  async * list (): AsyncIterable<BlobInfo> {
    for (const [sha256, bytes] of [...this.#blobs]) yield { sha256, size: bytes.byteLength }
  }

  async close (): Promise<void> {}
}
