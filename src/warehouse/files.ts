import type { Readable } from 'node:stream'
import type { BlobStore } from '../blobs/blob-store.ts'
import { exactLength } from '../blobs/exact-length.ts'
import { collectGarbage, type GcResult } from '../blobs/gc.ts'
import { GcGuard } from '../blobs/gc-guard.ts'
import type { BlobFetcher, Transfer } from '../blobs/transfer/fetcher.ts'
import { streamAsFetched } from '../blobs/transfer/stream-as-fetched.ts'
import type { WantQueue } from '../blobs/transfer/want-queue.ts'
import type { BlobRefs } from '../crdt/blob-refs.ts'
import type { FileRef, Version } from '../crdt/records/versions.ts'
import { DwError, isDwError } from '../errors.ts'

/** A site that holds a file: its peer id, and its name in the roster when it has one. */
export interface Holder { peerId: string, name?: string }

export interface FileAvailability extends FileRef {
  present: boolean
  /** Connected peers that answered, just now, that they have the file. */
  peers: string[]
  /** Copies the mesh keeps of this file (docs/files.md, "Copies"). */
  target?: number
  /** Sites that hold it: the replicated holdings, connected peers' answers and this node. */
  copies?: number
  holders?: Holder[]
}

/** Where copies are: what availability adds to the bytes here and the connected peers' answers. */
export interface CopyView {
  /** The copy target of a record with these tags and its own `copies`. */
  targetOf: (record: { tags?: string[], copies?: unknown }) => Promise<number>
  /** Sites whose replicated holdings list the blob (non-revoked roster members). */
  holders: (sha256: string) => Promise<string[]>
  /** Site names from the roster. */
  names: () => Promise<Map<string, string>>
  self: string
}
export interface VersionAvailability { versionId: string, complete: boolean, files: FileAvailability[] }
export interface AttachmentAvailability { complete: boolean, files: FileAvailability[] }

/**
 * File bytes as the API sees them: local when here, fetched from a peer on
 * demand otherwise, queued for later when no peer has them; availability
 * across the mesh; garbage collection.
 *
 * Bytes count as here only when an accepted reference names them
 * (`BlobRefs.accepted`): the bytes of deleted records, named again by a
 * record that could not read them, are neither served nor reported
 * present, exactly as if they were absent.
 */
export class Files {
  readonly store: BlobStore
  readonly guard = new GcGuard()
  readonly #fetcher: BlobFetcher | undefined
  readonly #queue: WantQueue | undefined
  readonly #refs: BlobRefs
  readonly #copies: CopyView | undefined
  readonly #onHeld: ((hashes: string[]) => void) | undefined

  /**
   * `copies`: where the mesh's copies are, for `availability`; `onHeld`:
   * told of blobs that may have come or gone here (garbage collection), so
   * this node's published holdings follow.
   */
  constructor (init: { store: BlobStore, refs: BlobRefs, fetcher?: BlobFetcher, queue?: WantQueue, copies?: CopyView, onHeld?: (hashes: string[]) => void }) {
    this.store = init.store
    this.#refs = init.refs
    this.#fetcher = init.fetcher
    this.#queue = init.queue
    this.#copies = init.copies
    this.#onHeld = init.onHeld
  }

  /**
   * The bytes of `file`, a file of record `key`, exactly `file.size` of
   * them: BLOB_UNAVAILABLE (and queued for later) when neither here nor at
   * a connected peer; CONFLICT when the bytes under its sha256 have another
   * size than the record declares (the record is wrong: a hash names one
   * size only), before any byte. A stream that would still run long or
   * short fails instead of completing.
   */
  async open (file: FileRef, key: string): Promise<Readable> {
    const { sha256, size } = file
    const here = await this.store.stat(sha256)
    if (here !== undefined && await this.#refs.isReferenced(sha256)) {
      if (here.size !== size) throw sizeConflict(file, here.size)
      return exactLength(await this.store.get(sha256), size)
    }
    // Absent, or here for no accepted reference: the same answers either way.
    if (this.#fetcher === undefined) throw new DwError('BLOB_NOT_FOUND', `the bytes of ${file.name} are not on this node`)
    const want = (): void => { void this.#queue?.want(sha256, size) }
    let stream: Readable
    try {
      // Bytes that are here unaccepted are fetched again, from a peer that would serve them.
      stream = await streamAsFetched(sha256, this.store, this.#fetcher, { size, force: here !== undefined })
    } catch (err) {
      if (isDwError(err, 'BLOB_UNAVAILABLE')) want()
      throw err
    }
    const running = this.#fetcher.running(sha256)
    const total = running?.transfer.total ?? (await this.store.stat(sha256))?.size
    if (total !== undefined && total !== size) {
      // A transfer another record started, declaring the true size.
      stream.destroy()
      throw sizeConflict(file, total)
    }
    // A peer served the bytes, so it accepts a reference to them: this record's is accepted here too.
    // (Best effort: without it the next download fetches once more.)
    const vouch = async (): Promise<void> => { await this.#refs.vouch(sha256, [key]).catch(() => {}) }
    if (running === undefined) await vouch()
    else running.done.then(vouch, () => {})
    // However a transfer still under way ends (a link may drop mid-file), a
    // failure leaves the file queued, so it arrives once a peer has it again.
    running?.done.catch(want)
    return exactLength(stream, size)
  }

  /** Whether the blob's bytes are here for an accepted reference (what `present` says in the API). */
  async present (sha256: string): Promise<boolean> {
    return await this.store.has(sha256) && await this.#refs.isReferenced(sha256)
  }

  /**
   * Record keys whose accepted reference names the blob: a member may
   * reference a blob in a record of theirs only if one of these (a live
   * record they can read) does. Depends on metadata only, never on whether
   * the bytes are here.
   */
  async readableThrough (sha256: string): Promise<string[]> {
    return await this.#refs.accepted(sha256)
  }

  /** An upload for record `key` brought these bytes: its references to them are accepted whatever came before. */
  async vouchUploaded (key: string, hashes: string[]): Promise<void> {
    for (const sha of new Set(hashes)) await this.#refs.vouch(sha, [key])
  }

  /**
   * Per version of `record`: whether each file is here, which connected
   * peers have it now and, with copies known, its copy target and every
   * site that holds it (replicated holdings, live answers and this node).
   */
  async availability (versions: Array<Pick<Version, 'id' | 'files'>>, record: { tags?: string[], copies?: unknown } = {}): Promise<VersionAvailability[]> {
    const hashes = [...new Set(versions.flatMap(v => v.files.map(f => f.sha256)))]
    const byPeer = this.#fetcher !== undefined && hashes.length > 0 ? await this.#fetcher.whoHas(hashes) : new Map<string, string[]>()
    const present = new Map(await Promise.all(hashes.map(async h => [h, await this.present(h)] as const)))
    const copies = this.#copies
    const target = copies === undefined ? undefined : await copies.targetOf(record)
    const names = copies === undefined ? new Map<string, string>() : await copies.names()
    const held = new Map(await Promise.all(hashes.map(async h => [h, copies === undefined ? [] : await copies.holders(h)] as const)))
    // Published holdings that disagree with the store (a blob removed by hand) are published again.
    const stale = new Set<string>()
    const out = versions.map(v => {
      const files = v.files.map(f => {
        const peers = [...byPeer].filter(([, has]) => has.includes(f.sha256)).map(([peer]) => peer)
        const out: FileAvailability = { ...f, present: present.get(f.sha256) === true, peers }
        if (copies !== undefined) {
          // This node by what is here, not by what it published.
          const listed = held.get(f.sha256) ?? []
          if (listed.includes(copies.self) !== out.present) stale.add(f.sha256)
          const where = new Set([...(out.present ? [copies.self] : []), ...listed.filter(p => p !== copies.self), ...peers])
          out.target = target
          out.copies = where.size
          out.holders = [...where].sort().map(peerId => {
            const name = names.get(peerId)
            return name === undefined || name === '' ? { peerId } : { peerId, name }
          })
        }
        return out
      })
      return { versionId: v.id, complete: files.every(f => f.present), files }
    })
    if (stale.size > 0) this.#onHeld?.([...stale])
    return out
  }

  /** A report's attachments, as availability shows a version's files. */
  async attachmentAvailability (files: FileRef[], record: { tags?: string[], copies?: unknown } = {}): Promise<AttachmentAvailability> {
    const [all] = await this.availability([{ id: '', files }], record)
    return { complete: all?.complete ?? true, files: all?.files ?? [] }
  }

  transfers (): Transfer[] {
    return this.#fetcher?.transfers() ?? []
  }

  wanted (): Array<{ sha256: string, size: number, waiting?: string }> {
    return this.#queue?.pending() ?? []
  }

  async collectGarbage (options: { dryRun?: boolean } = {}): Promise<GcResult> {
    const result = await collectGarbage(this.store, this.guard, async sha => await this.#refs.isReferenced(sha), options)
    if (options.dryRun !== true && result.removed.length > 0) this.#onHeld?.(result.removed.map(b => b.sha256))
    return result
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

function sizeConflict (file: FileRef, actual: number): DwError {
  return new DwError('CONFLICT', `the record declares ${file.size} bytes for ${file.name}, but the file with its sha256 has ${actual}: the record is wrong, so the file is not served`, {
    details: { sha256: file.sha256, declared: file.size, actual }
  })
}
