import type { Readable } from 'node:stream'
import type { BlobStore } from '../blobs/blob-store.ts'
import { collectGarbage, type GcResult } from '../blobs/gc.ts'
import { GcGuard } from '../blobs/gc-guard.ts'
import type { BlobFetcher, Transfer } from '../blobs/transfer/fetcher.ts'
import { streamAsFetched } from '../blobs/transfer/stream-as-fetched.ts'
import type { WantQueue } from '../blobs/transfer/want-queue.ts'
import type { BlobRefs } from '../crdt/blob-refs.ts'
import type { FileRef, Version } from '../crdt/records/versions.ts'
import { isDwError } from '../errors.ts'

export interface FileAvailability extends FileRef { present: boolean, peers: string[] }
export interface VersionAvailability { versionId: string, complete: boolean, files: FileAvailability[] }

/**
 * File bytes as the API sees them: local when here, fetched from a peer on
 * demand otherwise, queued for later when no peer has them; availability
 * across the mesh; garbage collection.
 */
export class Files {
  readonly store: BlobStore
  readonly guard = new GcGuard()
  readonly #fetcher: BlobFetcher | undefined
  readonly #queue: WantQueue | undefined
  readonly #refs: BlobRefs

  constructor (init: { store: BlobStore, refs: BlobRefs, fetcher?: BlobFetcher, queue?: WantQueue }) {
    this.store = init.store
    this.#refs = init.refs
    this.#fetcher = init.fetcher
    this.#queue = init.queue
  }

  /** The file's bytes; BLOB_UNAVAILABLE (and queued for later) when neither here nor at a connected peer. */
  async open (file: FileRef): Promise<Readable> {
    if (this.#fetcher === undefined) return await this.store.get(file.sha256)
    const want = (): void => { void this.#queue?.want(file.sha256, file.size) }
    let stream: Readable
    try {
      stream = await streamAsFetched(file.sha256, this.store, this.#fetcher)
    } catch (err) {
      if (isDwError(err, 'BLOB_UNAVAILABLE')) want()
      throw err
    }
    // However a transfer still under way ends (a link may drop mid-file), a
    // failure leaves the file queued, so it arrives once a peer has it again.
    this.#fetcher.running(file.sha256)?.done.catch(want)
    return stream
  }

  async availability (versions: Version[]): Promise<VersionAvailability[]> {
    const hashes = [...new Set(versions.flatMap(v => v.files.map(f => f.sha256)))]
    const byPeer = this.#fetcher !== undefined && hashes.length > 0 ? await this.#fetcher.whoHas(hashes) : new Map<string, string[]>()
    const present = new Map(await Promise.all(hashes.map(async h => [h, await this.store.has(h)] as const)))
    return versions.map(v => {
      const files = v.files.map(f => ({
        ...f,
        present: present.get(f.sha256) === true,
        peers: [...byPeer].filter(([, has]) => has.includes(f.sha256)).map(([peer]) => peer)
      }))
      return { versionId: v.id, complete: files.every(f => f.present), files }
    })
  }

  transfers (): Transfer[] {
    return this.#fetcher?.transfers() ?? []
  }

  wanted (): Array<{ sha256: string, size: number }> {
    return this.#queue?.pending() ?? []
  }

  async collectGarbage (options: { dryRun?: boolean } = {}): Promise<GcResult> {
    return await collectGarbage(this.store, this.guard, async sha => await this.#refs.isReferenced(sha), options)
  }

  /**
   * Removes blobs a refused upload stored, unless a record references them
   * by now. Runs under the guard, so an identical upload still in flight
   * (whose version will reference the same blob) is never robbed of it.
   */
  async discardUnreferenced (hashes: string[]): Promise<void> {
    if (hashes.length === 0) return
    await this.guard.whenIdle(async () => {
      for (const sha of new Set(hashes)) {
        if (!await this.#refs.isReferenced(sha)) await this.store.delete(sha)
      }
    })
  }
}
