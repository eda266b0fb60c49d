import { pipeline, Transform, type Readable } from 'node:stream'
import { DwError } from '../errors.ts'

/**
 * `source`, failing with INTEGRITY_MISMATCH the moment it yields more than
 * `size` bytes, or when it ends short of them. An HTTP response that
 * announced `size` bytes is then cut off, never completed with another
 * length: the last guard behind the checks made before the first byte.
 */
export function exactLength (source: Readable, size: number): Readable {
  let seen = 0
  const guard = new Transform({
    transform (chunk: Uint8Array, _encoding, callback) {
      seen += chunk.length
      if (seen > size) callback(new DwError('INTEGRITY_MISMATCH', `the file has more than the ${size} bytes its record declares`))
      else callback(null, chunk)
    },
    flush (callback) {
      callback(seen === size ? null : new DwError('INTEGRITY_MISMATCH', `the file ended at ${seen} of the ${size} bytes its record declares`))
    }
  })
  // Errors travel both ways: a failed source ends the guard, a destroyed guard (client gone) ends the source.
  return pipeline(source, guard, () => {})
}
