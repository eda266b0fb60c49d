import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { abortableIterable } from '../abortable.ts'
import { DwError } from '../errors.ts'
import { KeyLock } from '../key-lock.ts'
import type { BlobInfo, BlobStore, PutOptions } from './blob-store.ts'
import { assertSha256Hex } from './sha256.ts'

/**
 * The BlobStore contract, enforced once: the public methods validate their
 * arguments, hash and verify what is put, answer aborts and shape the errors;
 * a store overrides only the underscore methods, which receive valid input.
 *
 * A put is split in four so that each store keeps its own way of streaming
 * (a temp file, a multipart upload, a list of buffers) while the checks stay
 * here: `_begin` makes a place for the bytes, `_write` streams the checked
 * chunks into it, and only after the base class has verified the hash does
 * `_commit` make the blob visible. Any failure after `_begin` (the source's,
 * the store's, a mismatch, an abort) ends in `_discard`, so staged bytes
 * never outlive a failed put.
 *
 * `Staged` is the store's handle on a put in progress (a temp path, an upload).
 */
export abstract class AbstractBlobStore<Staged> implements BlobStore {
  /**
   * Present only on stores that implement `_adopt` (set by the constructor),
   * because callers test for it to choose between a rename and a copy.
   */
  declare readonly adoptVerifiedFile?: (path: string, sha256: string) => Promise<BlobInfo & { existed: boolean }>

  /**
   * Commits and deletes of one hash run one at a time, so `existed` is exact
   * within the process and a delete never interleaves with a commit's
   * check-then-write.
   */
  readonly #perHash = new KeyLock()

  constructor () {
    const adopt = this._adopt
    if (adopt !== undefined) {
      this.adoptVerifiedFile = async (path: string, sha256: string): Promise<BlobInfo & { existed: boolean }> => {
        assertSha256Hex(sha256)
        const { staged, size } = await adopt.call(this, path)
        // Not discarded on failure: until committed, the file is still the caller's.
        const existed = await this.#perHash.run(sha256, async () => await this._commit(staged, { sha256, size }))
        return { sha256, size, existed }
      }
    }
  }

  async put (source: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<BlobInfo & { existed: boolean }> {
    const { expectedSha256, signal } = options
    if (expectedSha256 !== undefined) assertSha256Hex(expectedSha256)
    signal?.throwIfAborted()
    const staged = await this._begin()
    const intake = new Intake(source, signal)
    try {
      await this._write(staged, intake, signal)
      const sha256 = intake.digest()
      const { size } = intake
      if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
        throw new DwError('INTEGRITY_MISMATCH', 'blob content does not match the expected sha256', {
          details: { expected: expectedSha256, actual: sha256, size }
        })
      }
      const existed = await this.#perHash.run(sha256, async () => await this._commit(staged, { sha256, size }))
      return { sha256, size, existed }
    } catch (err) {
      await this._discard(staged, signal?.aborted === true)
      throw err
    }
  }

  async has (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return await this._has(sha256)
  }

  async stat (sha256: string): Promise<BlobInfo | undefined> {
    assertSha256Hex(sha256)
    return await this._stat(sha256)
  }

  async get (sha256: string, options: { offset?: number } = {}): Promise<Readable> {
    assertSha256Hex(sha256)
    const offset = options.offset ?? 0
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new DwError('INVALID_INPUT', 'offset must be a non-negative integer', { details: { offset } })
    }
    const found = await this._get(sha256, offset)
    if (found === undefined) throw new DwError('BLOB_NOT_FOUND', `blob ${sha256} not found`, { details: { sha256 } })
    if (found instanceof Readable) return found
    throw new DwError('INVALID_INPUT', 'offset is past the end of the blob', { details: { offset, size: found.size } })
  }

  async delete (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return await this.#perHash.run(sha256, async () => await this._delete(sha256))
  }

  list (): AsyncIterable<BlobInfo> {
    return this._list()
  }

  async close (): Promise<void> {
    await this._close()
  }

  /** A place for a new put's bytes. Nothing there is visible as a blob. */
  protected abstract _begin (): Promise<Staged>

  /**
   * Streams `chunks` into `staged`, reading them to the end. The chunks are
   * already checked to be Uint8Arrays and hashed, and the iterable throws the
   * abort reason the moment `signal` aborts, even while the source stalls; a
   * store that awaits slow work of its own between chunks (an upload) must
   * still reject promptly on abort.
   */
  protected abstract _write (staged: Staged, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void>

  /**
   * Makes verified bytes the blob `blob.sha256`, or drops them when that blob
   * is already there; true in that case. Runs under the hash's lock (never
   * beside another `_commit` or `_delete` of the same hash in this process),
   * so a check-then-write here is exact.
   */
  protected abstract _commit (staged: Staged, blob: BlobInfo): Promise<boolean>

  /**
   * Undoes whatever a failed put left in `staged`; never throws. `aborted` is
   * true when the put's signal has aborted: the caller is waiting for the
   * rejection, so cleanup that may be slow (network) can go on in the
   * background as long as `_close` waits for it.
   */
  protected abstract _discard (staged: Staged, aborted: boolean): Promise<void>

  /**
   * Optional: stages a complete file the caller has hashed and fsynced, for
   * `_commit` to take without copying. A store that implements it offers
   * `adoptVerifiedFile`.
   */
  protected _adopt? (path: string): Promise<{ staged: Staged, size: number }>

  protected abstract _stat (sha256: string): Promise<BlobInfo | undefined>

  protected async _has (sha256: string): Promise<boolean> {
    return (await this._stat(sha256)) !== undefined
  }

  /**
   * The blob's bytes from `offset`; `undefined` when it is absent; its size
   * alone when `offset` is past the end. A store learns the size only as it
   * opens the blob, so it reports what it found and the base class words the
   * errors.
   */
  protected abstract _get (sha256: string, offset: number): Promise<Readable | { size: number } | undefined>

  /** Removes the blob; false when it was not there. Runs under the hash's lock, like `_commit`. */
  protected abstract _delete (sha256: string): Promise<boolean>

  protected abstract _list (): AsyncIterable<BlobInfo>

  protected async _close (): Promise<void> {}
}

/** A put's source as the store reads it: each chunk checked, hashed and counted on its way through. */
class Intake implements AsyncIterable<Uint8Array> {
  readonly #source: AsyncIterable<Uint8Array>
  readonly #signal: AbortSignal | undefined
  readonly #hash = createHash('sha256')
  #size = 0
  #ended = false

  constructor (source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined) {
    this.#source = source
    this.#signal = signal
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Uint8Array> {
    for await (const chunk of abortableIterable<unknown>(this.#source, this.#signal)) {
      if (!(chunk instanceof Uint8Array)) {
        throw new DwError('INVALID_INPUT', 'blob source must yield Uint8Array chunks')
      }
      this.#hash.update(chunk)
      this.#size += chunk.byteLength
      yield chunk
    }
    this.#ended = true
  }

  get size (): number {
    return this.#size
  }

  /** The sha256 of all the chunks; refuses before the end, where it would name a truncated blob. */
  digest (): string {
    if (!this.#ended) throw new Error('the blob store stopped reading the source before its end')
    return this.#hash.digest('hex')
  }
}
