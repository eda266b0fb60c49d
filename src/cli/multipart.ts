import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { DwError } from '../errors.ts'

export interface UploadFile {
  /** The name the file gets in the version. */
  name: string
  path: string
  size: number
  mediaType: string
}

export interface MultipartBody {
  contentType: string
  /** Exact, so the node can refuse an oversized upload before reading it. */
  length: number
  body: AsyncIterable<Uint8Array>
}

function quoted (value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
}

/**
 * A multipart/form-data body that streams each file from disk in turn, so
 * uploads of any size use constant memory.
 */
export function multipartBody (fields: Record<string, string>, files: UploadFile[], onBytes: (n: number) => void = () => {}): MultipartBody {
  const boundary = `dw-${randomBytes(16).toString('hex')}`
  const heads = files.map(f => Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename=${quoted(f.name)}\r\n` +
    `Content-Type: ${f.mediaType}\r\n\r\n`))
  const fieldParts = Object.entries(fields).map(([name, value]) => Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name=${quoted(name)}\r\n\r\n${value}\r\n`))
  const crlf = Buffer.from('\r\n')
  const end = Buffer.from(`--${boundary}--\r\n`)
  const length = fieldParts.reduce((n, b) => n + b.length, 0) +
    files.reduce((n, f, i) => n + (heads[i]?.length ?? 0) + f.size + crlf.length, 0) + end.length

  async function * generate (): AsyncGenerator<Uint8Array> {
    yield * fieldParts
    for (const [i, file] of files.entries()) {
      yield heads[i] as Buffer
      let sent = 0
      for await (const chunk of createReadStream(file.path, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
        sent += chunk.length
        if (sent > file.size) break
        onBytes(chunk.length)
        yield chunk
      }
      // The length was promised up front; a file that changed would corrupt the body.
      if (sent !== file.size) throw new DwError('INVALID_INPUT', `${file.path} changed while it was being uploaded; try again`)
      yield crlf
    }
    yield end
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, length, body: generate() }
}
