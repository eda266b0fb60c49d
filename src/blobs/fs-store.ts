import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { AbstractBlobStore } from './abstract-store.ts'
import type { BlobInfo } from './blob-store.ts'
import { isSha256Hex } from './sha256.ts'

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
export class FsBlobStore extends AbstractBlobStore<string> {
  readonly #root: string
  readonly #tmp: string
  #tmpReady: Promise<unknown> | undefined

  /** Prefer `open()`, which also clears temp files left by a crash. */
  constructor (dir: string) {
    super()
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

  /** A put's temp file, not yet created. */
  protected override async _begin (): Promise<string> {
    this.#tmpReady ??= mkdir(this.#tmp, { recursive: true })
    await this.#tmpReady
    return join(this.#tmp, `${randomUUID()}.part`)
  }

  protected override async _write (tmp: string, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    // Opened here, not lazily by the write stream, which could create the file after a failed put's `_discard` ran.
    const file = await open(tmp, 'wx')
    await pipeline(chunks, file.createWriteStream({ flush: true, highWaterMark: WRITE_HIGH_WATER_MARK }), { signal })
  }

  /** Moves a complete temp file into place; true when the blob was already there. */
  protected override async _commit (tmp: string, { sha256 }: BlobInfo): Promise<boolean> {
    const target = this.#path(sha256)
    if (await this._has(sha256)) {
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

  protected override async _discard (tmp: string): Promise<void> {
    await rm(tmp, { force: true })
  }

  /** The file is committed by rename, as a temp file is. */
  protected override async _adopt (path: string): Promise<{ staged: string, size: number }> {
    const { size } = await stat(path)
    return { staged: path, size }
  }

  protected override async _stat (sha256: string): Promise<BlobInfo | undefined> {
    try {
      const { size } = await stat(this.#path(sha256))
      return { sha256, size }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
  }

  protected override async _get (sha256: string, offset: number): Promise<Readable | { size: number } | undefined> {
    let file
    try {
      file = await open(this.#path(sha256), 'r')
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
    let size
    try {
      ({ size } = await file.stat())
    } catch (err) {
      await file.close()
      throw err
    }
    if (offset > size) {
      await file.close()
      return { size }
    }
    // The stream owns the handle from here and closes it on end or destroy.
    return file.createReadStream({ start: offset, highWaterMark: READ_HIGH_WATER_MARK })
  }

  protected override async _delete (sha256: string): Promise<boolean> {
    try {
      // No directory fsync: a delete lost to a crash leaves a blob that garbage collection finds again.
      await unlink(this.#path(sha256))
      return true
    } catch (err) {
      if (isNotFound(err)) return false
      throw err
    }
  }

  protected override async * _list (): AsyncIterable<BlobInfo> {
    for (const a of await namesIn(this.#root, FAN_OUT)) {
      for (const b of await namesIn(join(this.#root, a), FAN_OUT)) {
        for (const name of await namesIn(join(this.#root, a, b), undefined)) {
          if (!isSha256Hex(name) || !name.startsWith(a + b)) continue
          // Skips a blob deleted since the directory was read.
          const info = await this._stat(name)
          if (info !== undefined) yield info
        }
      }
    }
  }

  #path (sha256: string): string {
    return join(this.#root, sha256.slice(0, 2), sha256.slice(2, 4), sha256)
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
