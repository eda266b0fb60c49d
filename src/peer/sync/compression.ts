import { promisify } from 'node:util'
import { constants, createZstdCompress, createZstdDecompress, zstdCompress, zstdDecompress, type ZstdCompress, type ZstdDecompress } from 'node:zlib'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { DwError } from '../../errors.ts'
import { CountingTokenizer, DEFAULT_MAX_ITEMS } from '../framed-stream.ts'
import { MAX_SYNC_MESSAGE } from './messages.ts'
import type { MessageStream } from './types.ts'

/**
 * Compression of sync messages, negotiated per session: the puller lists
 * the codecs it reads in `hello.z`, the server names the one both use in
 * `welcome.z` (the first of its own list the puller offered), and every
 * message after the welcome, both ways, travels compressed. A peer of the
 * previous wire version sends no `z` (or ignores it), and the session
 * stays uncompressed.
 *
 * - `zstd-s`: one zstd stream per direction for the whole session, flushed
 *   at the end of every message, each frame `{s: <bytes>, n: <length of
 *   the CBOR message>}`. A message is compressed against everything sent
 *   before it (within a 512 KiB window): the keys of an offer come back in
 *   its documents, and a change made alone (an edit on a live link) looks
 *   much like the one before it. 100 changes sent one at a time shrank to
 *   a third of their size per message; an initial sync by 8%.
 * - `zstd`: each message compressed on its own, `{z: <bytes>}`. What nodes
 *   of the previous version offer.
 */
export const CODECS = ['zstd-s', 'zstd'] as const
export type Codec = typeof CODECS[number]

const compress = promisify(zstdCompress)
const decompress = promisify(zstdDecompress)
/**
 * Level 9, with match tables of level 3's size: what a sender spends on it
 * is small beside what a receiver spends taking a record in (~1.5 ms of
 * Automerge), and the bytes are what a thin link pays for. Over 4,096
 * dataset documents as a session sends them (scratch measurement): level 3
 * 267 B a record at 17 µs, level 9 247 B at 41 µs, level 12 241 B at 82 µs,
 * level 19 227 B at 706 µs. Level 9's own tables take ~11 MiB per stream;
 * held to level 3's (2^17 hash, 2^16 chain entries) it sends 248.5 B a
 * record in the same memory as level 3. In a sync of 2,000 records it sent
 * 6% fewer bytes than level 3 (docs/benchmarks.md). The receiver's cost
 * does not depend on the level, and a peer of any version decodes it.
 */
const LEVEL = 9
/**
 * For a thin link (metered, or capped at 1 Mbit/s or less: isThinLink):
 * level 17, 234.5 B a record at ~245 µs in the same measurement, 6% fewer
 * bytes than level 9 for 7x its CPU, which a link that carries a record
 * in 2 ms or more (1 Mbit/s) hides. Level 19 saved nothing more with these
 * tables, at twice the CPU.
 */
const THIN_LEVEL = 17
const TABLES = { [constants.ZSTD_c_hashLog]: 17, [constants.ZSTD_c_chainLog]: 16 }

/** How this side compresses what it sends. The peer decodes any of it alike. */
export interface CompressionOptions {
  /** The link is thin: spend more of this side's CPU to send fewer bytes. */
  thin?: boolean
}

function encoderParams (options: CompressionOptions): Record<number, number> {
  return { [constants.ZSTD_c_compressionLevel]: options.thin === true ? THIN_LEVEL : LEVEL, ...TABLES }
}

/**
 * A session stream's window: 512 KiB. Each side keeps an encoder and a
 * decoder per session (about 1.5 MiB in all) for as long as the session
 * lasts; a larger window gained 4% more on an initial sync for 4x the
 * memory. A peer's stream that needs a larger window is refused.
 */
const WINDOW_LOG = 19

export function isCodec (value: unknown): value is Codec {
  return typeof value === 'string' && (CODECS as readonly string[]).includes(value)
}

/** The codec the server picks from what the puller offers, or undefined for none. */
export function chooseCodec (offered: string[] | undefined, enabled: boolean): Codec | undefined {
  if (!enabled || offered === undefined) return undefined
  return CODECS.find(c => offered.includes(c))
}

function invalid (message: string, cause?: unknown): DwError {
  return new DwError('INVALID_MESSAGE', `malformed sync message: ${message}`, { cause })
}

/**
 * `inner` with every message compressed with `codec`. What arrives is held
 * to the same limits as an uncompressed frame: at most MAX_SYNC_MESSAGE
 * bytes once decompressed (a small frame that would inflate past it is a
 * violation, not an allocation) and at most DEFAULT_MAX_ITEMS CBOR items.
 */
export function compressed (inner: MessageStream, codec: Codec, options: CompressionOptions = {}): MessageStream {
  return codec === 'zstd-s' ? streamed(inner, options) : perMessage(inner, options)
}

function encodeMessage (message: unknown): Uint8Array {
  const body = cborEncode(message, { ignoreUndefinedProperties: true })
  if (body.byteLength > MAX_SYNC_MESSAGE) {
    throw new DwError('PAYLOAD_TOO_LARGE', `message of ${body.byteLength} bytes exceeds the ${MAX_SYNC_MESSAGE}-byte frame limit`, { details: { size: body.byteLength, max: MAX_SYNC_MESSAGE } })
  }
  return body
}

function decodeMessage (body: Uint8Array): unknown {
  try {
    return cborDecode(body, { rejectDuplicateMapKeys: true, tokenizer: new CountingTokenizer(body, DEFAULT_MAX_ITEMS) })
  } catch (err) {
    throw invalid('a compressed frame is not valid CBOR', err)
  }
}

function perMessage (inner: MessageStream, options: CompressionOptions): MessageStream {
  const params = encoderParams(options)
  return {
    send: async (message: unknown) => {
      const packed = await compress(encodeMessage(message), { params })
      await inner.send({ z: new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength) })
    },
    read: async () => {
      const next = await inner.read()
      if (next.done === true) return next
      const frame = next.value as { z?: unknown } | null
      if (typeof frame !== 'object' || frame === null || !(frame.z instanceof Uint8Array) || Object.keys(frame).length !== 1) {
        throw invalid('expected a compressed frame {z: bytes} after the welcome')
      }
      let body: Buffer
      try {
        body = await decompress(frame.z, { maxOutputLength: MAX_SYNC_MESSAGE })
      } catch (err) {
        throw invalid(`a compressed frame does not decompress within ${MAX_SYNC_MESSAGE} bytes`, err)
      }
      return { done: false, value: decodeMessage(body) }
    },
    close: async () => { await inner.close() },
    abort: (err: Error) => { inner.abort(err) }
  }
}

/** Runs `step` after every step queued before it: one message at a time through a stream. */
function queue (): <T>(step: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve()
  return async <T>(step: () => Promise<T>): Promise<T> => {
    const run = tail.then(step, step)
    tail = run.catch(() => {})
    return await run
  }
}

/** One zstd stream for everything this side sends: each message ends in a flush, so the peer can decode it at once. */
class StreamEncoder {
  readonly #z: ZstdCompress
  #out: Buffer[] = []

  constructor (options: CompressionOptions) {
    this.#z = createZstdCompress({ params: { ...encoderParams(options), [constants.ZSTD_c_windowLog]: WINDOW_LOG } })
    this.#z.on('data', (chunk: Buffer) => { this.#out.push(chunk) })
  }

  async pack (body: Uint8Array): Promise<Uint8Array> {
    await new Promise<void>((resolve, reject) => {
      this.#z.once('error', reject)
      this.#z.write(body)
      // The flush's callback runs once everything written before it is out.
      this.#z.flush(constants.ZSTD_e_flush, () => { this.#z.off('error', reject); resolve() })
    })
    const out = Buffer.concat(this.#out)
    this.#out = []
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  }

  close (): void { this.#z.destroy() }
}

/**
 * The peer's zstd stream, decoded a frame at a time. A frame must decode to
 * exactly the length it announces: more is a violation the moment it shows
 * (the stream is destroyed, nothing more is inflated), so a small frame
 * can never take more than MAX_SYNC_MESSAGE of memory.
 */
class StreamDecoder {
  readonly #d: ZstdDecompress
  #out: Buffer[] = []
  #length = 0
  #limit = 0
  #failure: Error | undefined

  constructor () {
    this.#d = createZstdDecompress({ params: { [constants.ZSTD_d_windowLogMax]: WINDOW_LOG } })
    this.#d.on('data', (chunk: Buffer) => {
      this.#length += chunk.length
      if (this.#length > this.#limit) {
        this.#failure ??= invalid('a compressed frame decodes to more than it announced')
        this.#d.destroy()
        return
      }
      this.#out.push(chunk)
    })
    this.#d.on('error', (err: Error) => { this.#failure ??= invalid('a compressed frame is not valid zstd', err) })
  }

  async unpack (bytes: Uint8Array, length: number): Promise<Buffer> {
    if (this.#failure !== undefined) throw this.#failure
    this.#out = []
    this.#length = 0
    this.#limit = length
    await new Promise<void>(resolve => {
      // Once the bytes written before the flush are decoded and out, or the stream failed and closed.
      const done = (): void => { this.#d.off('close', done); resolve() }
      this.#d.once('close', done)
      this.#d.write(bytes)
      this.#d.flush(done)
    })
    if (this.#failure !== undefined) throw this.#failure
    if (this.#length !== length) throw invalid(`a compressed frame decodes to ${this.#length} bytes, not the ${length} it announced`)
    const body = Buffer.concat(this.#out)
    this.#out = []
    return body
  }

  close (): void { this.#d.destroy() }
}

function streamed (inner: MessageStream, options: CompressionOptions): MessageStream {
  const encoder = new StreamEncoder(options)
  const decoder = new StreamDecoder()
  const sending = queue()
  const end = (): void => { encoder.close(); decoder.close() }
  return {
    // Frames must leave in the order they were packed: one send at a time.
    send: async (message: unknown) => {
      await sending(async () => {
        const body = encodeMessage(message)
        await inner.send({ s: await encoder.pack(body), n: body.byteLength })
      })
    },
    read: async () => {
      try {
        const next = await inner.read()
        if (next.done === true) {
          end()
          return next
        }
        const frame = next.value as { s?: unknown, n?: unknown } | null
        if (typeof frame !== 'object' || frame === null || !(frame.s instanceof Uint8Array) || Object.keys(frame).length !== 2 ||
          typeof frame.n !== 'number' || !Number.isSafeInteger(frame.n) || frame.n < 0 || frame.n > MAX_SYNC_MESSAGE) {
          throw invalid(`expected a compressed frame {s: bytes, n: length of at most ${MAX_SYNC_MESSAGE}} after the welcome`)
        }
        return { done: false, value: decodeMessage(await decoder.unpack(frame.s, frame.n)) }
      } catch (err) {
        // The session is over either way: its codec memory goes now, not at the next GC.
        end()
        throw err
      }
    },
    close: async () => {
      try {
        await inner.close()
      } finally {
        end()
      }
    },
    abort: (err: Error) => {
      end()
      inner.abort(err)
    }
  }
}
