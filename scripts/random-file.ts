import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'

const MiB = 1024 * 1024

/** Writes `size` random bytes to `path` a MiB at a time (never the whole file in memory); returns their sha256. */
export async function writeRandomFile (path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(async function * () {
    for (let written = 0; written < size; written += MiB) {
      const chunk = randomBytes(Math.min(MiB, size - written))
      hash.update(chunk)
      yield chunk
    }
  }, createWriteStream(path))
  return hash.digest('hex')
}
