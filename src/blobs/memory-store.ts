import { Readable } from 'node:stream'
import { AbstractBlobStore } from './abstract-store.ts'
import type { BlobInfo } from './blob-store.ts'

/** Blobs in a Map, for fast unit tests; same contract as the filesystem store. */
export class MemoryBlobStore extends AbstractBlobStore<Buffer[]> {
  readonly #blobs = new Map<string, Buffer>()

  protected override async _begin (): Promise<Buffer[]> {
    return []
  }

  protected override async _write (staged: Buffer[], chunks: AsyncIterable<Uint8Array>): Promise<void> {
    // Copies, so a source that breaks the contract by reusing its buffers cannot change a stored blob.
    for await (const chunk of chunks) staged.push(Buffer.from(chunk))
  }

  protected override async _commit (staged: Buffer[], { sha256 }: BlobInfo): Promise<boolean> {
    if (this.#blobs.has(sha256)) return true
    this.#blobs.set(sha256, Buffer.concat(staged))
    return false
  }

  protected override async _discard (): Promise<void> {}

  protected override async _has (sha256: string): Promise<boolean> {
    return this.#blobs.has(sha256)
  }

  protected override async _stat (sha256: string): Promise<BlobInfo | undefined> {
    const bytes = this.#blobs.get(sha256)
    return bytes === undefined ? undefined : { sha256, size: bytes.byteLength }
  }

  protected override async _get (sha256: string, offset: number): Promise<Readable | { size: number } | undefined> {
    const bytes = this.#blobs.get(sha256)
    if (bytes === undefined) return undefined
    if (offset > bytes.byteLength) return { size: bytes.byteLength }
    // A copy, so a reader that mutates its chunk cannot corrupt the stored blob.
    const rest = Buffer.from(bytes.subarray(offset))
    return Readable.from(rest.byteLength === 0 ? [] : [rest], { objectMode: false })
  }

  protected override async _delete (sha256: string): Promise<boolean> {
    return this.#blobs.delete(sha256)
  }

  protected override async * _list (): AsyncIterable<BlobInfo> {
    for (const [sha256, bytes] of [...this.#blobs]) yield { sha256, size: bytes.byteLength }
  }
}
