import { createHash, randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DwError } from '../errors.ts'
import { KeyLock } from '../key-lock.ts'
import { abortableIterable } from '../abortable.ts'
import type { BlobInfo, BlobStore, PutOptions } from './blob-store.ts'
import { assertSha256Hex, isSha256Hex } from './sha256.ts'

const FAN_OUT = /^[0-9a-f]{2}$/
const WRITE_HIGH_WATER_MARK = 1024 * 1024
const READ_HIGH_WATER_MARK = 1024 * 1024

/**
 * Blobs as files at `<dir>/ab/cd/<sha256>`; the two levels of fan-out keep
 * each directory small enough for any filesystem. A put streams into
 * `<dir>/tmp/<random>`, fsyncs it and renames it into place, so a blob path
 * only ever holds complete, verified bytes, even after a crash.
 *
 * One store per directory: `open()` deletes whatever is in `tmp/`.
 */
export class FsBlobStore implements BlobStore {
  readonly #root: string
  readonly #tmp: string
  #tmpReady: Promise<unknown> | undefined
  /** Tail of the queue of commits and deletes per hash. */
  /**
   * Commits and deletes of one hash run one at a time, so `existed` is exact
   * within the process and a delete never interleaves with the
   * check-then-rename of a put.
   */
  readonly #perHash = new KeyLock()

  /** Prefer `open()`, which also clears temp files left by a crash. */
  constructor (dir: string) {
    this.#root = dir
    this.#tmp = join(dir, 'tmp')
  }

  static async open (dir: string): Promise<FsBlobStore> {
    const tmp = join(dir, 'tmp')
    await mkdir(tmp, { recursive: true })
    // Anything here is a put that never finished: its caller got an error or the process died.
    for (const name of await readdir(tmp)) {
      await rm(join(tmp, name), { recursive: true, force: true })
    }
    return new FsBlobStore(dir)
  }

  async put (source: AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<BlobInfo & { existed: boolean }> {
    const { expectedSha256, signal } = options
    if (expectedSha256 !== undefined) assertSha256Hex(expectedSha256)
    signal?.throwIfAborted()
    this.#tmpReady ??= mkdir(this.#tmp, { recursive: true })
    await this.#tmpReady

    const tmp = join(this.#tmp, `${randomUUID()}.part`)
    const hash = createHash('sha256')
    let size = 0
    // Created before the pipeline starts so the cleanup below can never run ahead of the file's creation.
    const file = await open(tmp, 'wx')
    try {
      await pipeline(
        abortableIterable(source, signal),
        async function * (chunks: AsyncIterable<unknown>) {
          for await (const chunk of chunks) {
            if (!(chunk instanceof Uint8Array)) {
              throw new DwError('INVALID_INPUT', 'blob source must yield Uint8Array chunks')
            }
            hash.update(chunk)
            size += chunk.byteLength
            yield chunk
          }
        },
        file.createWriteStream({ flush: true, highWaterMark: WRITE_HIGH_WATER_MARK }),
        { signal }
      )
      const sha256 = hash.digest('hex')
      if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
        throw new DwError('INTEGRITY_MISMATCH', 'blob content does not match the expected sha256', {
          details: { expected: expectedSha256, actual: sha256, size }
        })
      }
      const existed = await this.#perHash.run(sha256, async () => await this.#commit(tmp, sha256))
      return { sha256, size, existed }
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
  }

  readonly adoptVerifiedFile = async (path: string, sha256: string): Promise<BlobInfo & { existed: boolean }> => {
    assertSha256Hex(sha256)
    const { size } = await stat(path)
    const existed = await this.#perHash.run(sha256, async () => await this.#commit(path, sha256))
    return { sha256, size, existed }
  }

  async has (sha256: string): Promise<boolean> {
    return (await this.stat(sha256)) !== undefined
  }

  async stat (sha256: string): Promise<BlobInfo | undefined> {
    assertSha256Hex(sha256)
    try {
      const { size } = await stat(this.#path(sha256))
      return { sha256, size }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
  }

  async get (sha256: string, options: { offset?: number } = {}): Promise<Readable> {
    assertSha256Hex(sha256)
    const offset = options.offset ?? 0
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new DwError('INVALID_INPUT', 'offset must be a non-negative integer', { details: { offset } })
    }
    let file
    try {
      file = await open(this.#path(sha256), 'r')
    } catch (err) {
      if (isNotFound(err)) throw new DwError('BLOB_NOT_FOUND', `blob ${sha256} not found`, { details: { sha256 } })
      throw err
    }
    try {
      const { size } = await file.stat()
      if (offset > size) {
        throw new DwError('INVALID_INPUT', 'offset is past the end of the blob', { details: { offset, size } })
      }
    } catch (err) {
      await file.close()
      throw err
    }
    // The stream owns the handle from here and closes it on end or destroy.
    return file.createReadStream({ start: offset, highWaterMark: READ_HIGH_WATER_MARK })
  }

  async delete (sha256: string): Promise<boolean> {
    assertSha256Hex(sha256)
    return await this.#perHash.run(sha256, async () => {
      try {
        // No directory fsync: a delete lost to a crash leaves a blob that garbage collection finds again.
        await unlink(this.#path(sha256))
        return true
      } catch (err) {
        if (isNotFound(err)) return false
        throw err
      }
    })
  }

  async * list (): AsyncIterable<BlobInfo> {
    for (const a of await namesIn(this.#root, FAN_OUT)) {
      for (const b of await namesIn(join(this.#root, a), FAN_OUT)) {
        for (const name of await namesIn(join(this.#root, a, b), undefined)) {
          if (!isSha256Hex(name) || !name.startsWith(a + b)) continue
          // Skips a blob deleted since the directory was read.
          const info = await this.stat(name)
          if (info !== undefined) yield info
        }
      }
    }
  }

  async close (): Promise<void> {}

  #path (sha256: string): string {
    return join(this.#root, sha256.slice(0, 2), sha256.slice(2, 4), sha256)
  }

  /** Moves a complete temp file into place; true when the blob was already there. */
  async #commit (tmp: string, sha256: string): Promise<boolean> {
    const target = this.#path(sha256)
    if (await this.has(sha256)) {
      await rm(tmp, { force: true })
      return true
    }
    const dir = dirname(target)
    // Fan-out directories are never removed, so none can vanish between this mkdir and the rename.
    const created = await mkdir(dir, { recursive: true })
    await rename(tmp, target)
    await fsyncDir(dir)
    if (created !== undefined) {
      await fsyncDir(dirname(dir))
      await fsyncDir(this.#root)
    }
    return false
  }
}

/** Makes a rename or new entry in `dir` durable. */
async function fsyncDir (dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Sorted names in `dir` (matching `pattern` if given); none when `dir` is missing. */
async function namesIn (dir: string, pattern: RegExp | undefined): Promise<string[]> {
  let names
  try {
    names = await readdir(dir)
  } catch (err) {
    if (isNotFound(err) || hasCode(err, 'ENOTDIR')) return []
    throw err
  }
  return names.filter((name) => pattern === undefined || pattern.test(name)).sort()
}

function isNotFound (err: unknown): boolean {
  return hasCode(err, 'ENOENT')
}

function hasCode (err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code
}
