import { decode as cborDecode, encode as cborEncode, Tokenizer } from 'cborg'
import { StreamResetError, StreamStateError } from '@libp2p/interface'
import type { AbortOptions, Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { abortable } from '../abortable.ts'
import { DwError } from '../errors.ts'

/** Default hard limit on one encoded message (4 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

/**
 * Default limit on CBOR items (values, map and array headers) in one frame.
 * A one-byte CBOR item (an empty map) costs ~75 bytes of heap once decoded:
 * without a count, a single 16 MiB frame of them would take a gigabyte and
 * seconds of blocked event loop before any validation could refuse it.
 */
export const DEFAULT_MAX_ITEMS = 100_000

/** A cborg tokenizer that refuses a frame holding more than `max` items. */
export class CountingTokenizer extends Tokenizer {
  #left: number

  constructor (data: Uint8Array, max: number) {
    super(data, { rejectDuplicateMapKeys: true })
    this.#left = max
  }

  override next (): ReturnType<Tokenizer['next']> {
    if (--this.#left < 0) throw new Error('too many CBOR items in one frame')
    return super.next()
  }
}

export interface FramedStreamOptions {
  /**
   * Largest encoded message accepted or sent, in bytes. A peer announcing a
   * bigger frame is misbehaving: the stream is aborted with INVALID_MESSAGE
   * before its body is buffered.
   */
  maxMessageSize?: number
  /**
   * Decoded-but-unread bytes at which the underlying stream is paused, so a
   * slow reader slows the sender down instead of buffering without bound.
   * Defaults to `maxMessageSize`.
   */
  readHighWaterMark?: number
  /** Largest number of CBOR items in one message (see DEFAULT_MAX_ITEMS). */
  maxItems?: number
  /**
   * The cap on bytes sent to this stream's peer (its link profile), asked
   * again for every slice, since a profile may change while a stream is
   * open; undefined means no cap. See `send`.
   */
  pacer?: () => Pacer | undefined
}

/** A byte budget shared by the streams to one peer (a RateLimit). */
export interface Pacer {
  readonly bytesPerSecond: number
  /** Resolves once `bytes` more fit within the rate. */
  take: (bytes: number) => Promise<void>
}

/**
 * A paced frame goes out in slices of about an eighth of a second of
 * bytes: whole, a 256 KiB blob chunk at 128 kbit/s would be 16 s of
 * silence and then a burst, and the peer's idle timeout (10 s without a
 * byte) would give up on a link that is merely slow.
 */
function sliceBytes (bytesPerSecond: number): number {
  return Math.max(1024, Math.min(64 * 1024, Math.floor(bytesPerSecond / 8)))
}

/** A varint of more bytes than this cannot describe a frame we would accept. */
const MAX_VARINT_BYTES = 8

/**
 * CBOR messages over a libp2p v3 stream, each one unsigned-varint length
 * prefixed. Both directions work at once: `send` while another task reads.
 *
 * Decoded messages are `unknown`: validate them before use.
 *
 * Errors: a local protocol violation (oversized or undecodable frame, stream
 * ended mid-frame) is a `DwError` INVALID_MESSAGE; transport failures surface
 * as libp2p's own errors (`err.name` is e.g. `StreamResetError` when the
 * remote aborted, `StreamStateError` when sending on a closed stream).
 */
export class FramedStream implements AsyncIterable<unknown> {
  readonly #maxItems: number
  /** Framed bytes handed to / received from the transport, for sync status. */
  bytesSent = 0
  bytesReceived = 0
  readonly #stream: Stream
  readonly #maxMessageSize: number
  readonly #highWaterMark: number
  readonly #pacer: (() => Pacer | undefined) | undefined
  /** Paced sends go one at a time, so slices of two frames never interleave. */
  #pacedTail: Promise<void> = Promise.resolve()
  #pacedBusy = 0

  // Inbound bytes not yet forming a whole frame, kept as chunks so a large
  // frame arriving in many pieces is copied once, not once per piece.
  #chunks: Uint8Array[] = []
  #buffered = 0
  #frameLength = -1

  readonly #queue: Array<{ value: unknown, size: number }> = []
  #queuedBytes = 0
  #paused = false
  #resuming = false
  #remoteEnded = false
  #finished = false
  #error: Error | undefined
  #waiters: Array<() => void> = []
  #drain: Promise<void> | undefined

  constructor (stream: Stream, options: FramedStreamOptions = {}) {
    this.#stream = stream
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.#maxItems = options.maxItems ?? DEFAULT_MAX_ITEMS
    this.#highWaterMark = options.readHighWaterMark ?? this.#maxMessageSize
    this.#pacer = options.pacer
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('remoteCloseWrite', this.#onRemoteCloseWrite)
    stream.addEventListener('close', this.#onClose)
    // The remote may have finished, or the stream died, before this wrapper
    // existed; the events saying so have then already fired.
    if (stream.status === 'reset' || stream.status === 'aborted') {
      this.#fail(new StreamResetError(`stream was already ${stream.status}`))
    } else if (stream.remoteWriteStatus === 'closed' || stream.readStatus === 'closed' || stream.readStatus === 'closing') {
      this.#remoteEnded = true
      queueMicrotask(() => {
        this.#maybeFinish()
        this.#notify()
      })
    }
  }

  /** The underlying libp2p stream, for its `protocol`, `status` and `id`. */
  get stream (): Stream {
    return this.#stream
  }

  /**
   * Encode and send one message. Resolves once the stream can take more data,
   * so a sender that awaits each call never buffers more than one message
   * beyond what the transport has accepted. Calls made without awaiting are
   * still sent in call order. With a `pacer` the frame is handed over in
   * slices as the rate allows; a send aborted midway resets the stream
   * (half a frame cannot be taken back).
   */
  async send (message: unknown, options: AbortOptions = {}): Promise<void> {
    const body = cborEncode(message, { ignoreUndefinedProperties: true })
    if (body.byteLength > this.#maxMessageSize) {
      throw new DwError('PAYLOAD_TOO_LARGE', `message of ${body.byteLength} bytes exceeds the ${this.#maxMessageSize}-byte frame limit`, {
        details: { size: body.byteLength, max: this.#maxMessageSize }
      })
    }
    const frame = new Uint8Array(varintLength(body.byteLength) + body.byteLength)
    const offset = writeVarint(body.byteLength, frame)
    frame.set(body, offset)
    this.bytesSent += frame.byteLength
    const pacer = this.#pacer
    // Uncapped, with no paced frame still going out: sent now, as always.
    if (pacer === undefined || (this.#pacedBusy === 0 && pacer() === undefined)) {
      if (!this.#stream.send(frame)) await this.#drained(options)
      return
    }
    this.#pacedBusy += 1
    const turn = this.#pacedTail.then(async () => { await this.#sendPaced(frame, pacer, options) }).finally(() => { this.#pacedBusy -= 1 })
    this.#pacedTail = turn.catch(() => {})
    await turn
  }

  async #sendPaced (frame: Uint8Array, pacer: () => Pacer | undefined, options: AbortOptions): Promise<void> {
    let at = 0
    try {
      while (at < frame.byteLength) {
        const pace = pacer()
        const end = pace === undefined ? frame.byteLength : Math.min(frame.byteLength, at + sliceBytes(pace.bytesPerSecond))
        if (pace !== undefined) await abortable(pace.take(end - at), options.signal)
        const sent = this.#stream.send(frame.subarray(at, end))
        at = end
        if (!sent) await this.#drained(options)
      }
    } catch (err) {
      if (at > 0 && at < frame.byteLength) this.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  /**
   * Wait for the next message. `done` is true once the remote has closed its
   * writable end and every message before that was read. Rejects with the
   * stream's error if it was aborted or reset. Concurrent readers each get
   * a different message; the iterator is the usual single consumer.
   */
  async read (options: AbortOptions = {}): Promise<IteratorResult<unknown, undefined>> {
    while (true) {
      const item = this.#queue.shift()
      if (item !== undefined) {
        this.#queuedBytes -= item.size
        this.#maybeResume()
        return { done: false, value: item.value }
      }
      if (this.#error !== undefined) throw this.#error
      if (this.#finished) return { done: true, value: undefined }
      await this.#nextEvent(options)
    }
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<unknown, void, undefined> {
    while (true) {
      const result = await this.read()
      if (result.done === true) return
      yield result.value
    }
  }

  /**
   * Close the writable end once queued bytes (paced frames too) are handed
   * to the transport.
   * Reading continues until the remote closes its end too.
   */
  async close (options: AbortOptions = {}): Promise<void> {
    if (this.#pacedBusy > 0) await abortable(this.#pacedTail, options.signal)
    await this.#stream.close(options)
  }

  /** Reset the stream now: unsent and unread data are discarded. */
  abort (err: Error): void {
    this.#fail(err)
    this.#stream.abort(err)
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    // An exception thrown from an event listener would be an uncaught
    // exception for the whole node; a bad peer must only lose its stream.
    try {
      const data = evt.data
      this.bytesReceived += data.byteLength
      if (data instanceof Uint8Array) {
        this.#push(data)
      } else {
        for (const chunk of data) this.#push(chunk)
      }
      this.#decodeFrames()
      this.#maybePause()
      this.#maybeFinish()
      this.#notify()
    } catch (err) {
      this.abort(err instanceof DwError ? err : invalid('undecodable frame', err))
    }
  }

  readonly #onRemoteCloseWrite = (): void => {
    this.#remoteEnded = true
    // A muxer may flag FIN on the frame that also carries the last data and
    // dispatch this event before that data: finish after it is delivered.
    queueMicrotask(() => {
      this.#maybeFinish()
      this.#notify()
    })
  }

  readonly #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error !== undefined) {
      this.#fail(evt.error)
    } else {
      this.#remoteEnded = true
      this.#maybeFinish()
    }
    this.#notify()
  }

  #push (chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.byteLength
  }

  #decodeFrames (): void {
    while (true) {
      if (this.#frameLength < 0) {
        const header = this.#readVarint()
        if (header === undefined) return
        if (header.value > this.#maxMessageSize) {
          throw invalid(`peer announced a ${header.value}-byte frame, limit is ${this.#maxMessageSize}`, undefined, { size: header.value, max: this.#maxMessageSize })
        }
        this.#take(header.bytes)
        this.#frameLength = header.value
      }
      if (this.#buffered < this.#frameLength) return
      const size = this.#frameLength
      const body = this.#take(size)
      this.#frameLength = -1
      let value: unknown
      try {
        value = cborDecode(body, { rejectDuplicateMapKeys: true, tokenizer: new CountingTokenizer(body, this.#maxItems) })
      } catch (err) {
        throw invalid('frame is not valid CBOR', err)
      }
      this.#queue.push({ value, size })
      this.#queuedBytes += size
    }
  }

  #readVarint (): { value: number, bytes: number } | undefined {
    let value = 0
    let scale = 1
    let index = 0
    for (const chunk of this.#chunks) {
      for (const byte of chunk) {
        value += (byte & 0x7f) * scale
        index++
        if ((byte & 0x80) === 0) return { value, bytes: index }
        if (index >= MAX_VARINT_BYTES) throw invalid('frame length prefix is too long')
        scale *= 128
      }
    }
    return undefined
  }

  /** Remove and return the first `n` buffered bytes, copying only if they span chunks. */
  #take (n: number): Uint8Array {
    this.#buffered -= n
    const first = this.#chunks[0]
    if (first !== undefined && first.byteLength >= n) {
      if (first.byteLength === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.#chunks[0] as Uint8Array
      const count = Math.min(chunk.byteLength, n - filled)
      out.set(chunk.subarray(0, count), filled)
      filled += count
      if (count === chunk.byteLength) this.#chunks.shift()
      else this.#chunks[0] = chunk.subarray(count)
    }
    return out
  }

  #maybePause (): void {
    if (this.#resuming) return
    if (this.#paused || this.#queuedBytes < this.#highWaterMark) return
    if (this.#stream.readStatus !== 'readable') return
    this.#paused = true
    this.#stream.pause()
  }

  #maybeResume (): void {
    if (!this.#paused || this.#queuedBytes > this.#highWaterMark / 2) return
    this.#paused = false
    if (this.#stream.readStatus !== 'paused') return
    try {
      // Delivers anything buffered while paused, synchronously, via #onMessage.
      // A pause requested during that delivery would be undone by the window
      // update resume() sends on its way out, leaving the sender unchecked
      // until the read buffer limit resets the stream: pause after it instead.
      this.#resuming = true
      try {
        this.#stream.resume()
      } finally {
        this.#resuming = false
      }
      this.#maybePause()
    } catch (err) {
      // Resuming also sends a window update, which fails harmlessly when the
      // stream has already closed; the buffered data was delivered first.
      if (this.#stream.status === 'open') this.#fail(err as Error)
    }
    this.#maybeFinish()
  }

  #maybeFinish (): void {
    if (this.#finished || !this.#remoteEnded || this.#paused) return
    if (this.#stream.readBufferLength > 0) return
    this.#finished = true
    if (this.#buffered > 0 || this.#frameLength >= 0) {
      this.#fail(invalid(`stream ended in the middle of a frame (${this.#buffered} bytes left over)`))
    }
  }

  #fail (err: Error): void {
    this.#error ??= err
    this.#finished = true
    this.#notify()
  }

  #notify (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  async #nextEvent (options: AbortOptions): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>()
    this.#waiters.push(resolve)
    try {
      await abortable(promise, options.signal)
    } finally {
      this.#waiters = this.#waiters.filter(wake => wake !== resolve)
    }
  }

  /**
   * Wait until the stream no longer needs draining. `Stream.onDrain()` is not
   * used: in @libp2p/utils 7.4 its promise is created once and never
   * replaced, so after the first drain it resolves at once and applies no
   * backpressure. Concurrent senders share one wait: a listener pair per
   * caller would make each drain wake every queued sender.
   */
  async #drained (options: AbortOptions): Promise<void> {
    while (this.#stream.writableNeedsDrain) {
      if (this.#stream.status !== 'open') throw this.#error ?? new StreamStateError(`stream is ${this.#stream.status}`)
      if (this.#drain === undefined) {
        this.#drain = this.#nextDrain()
        // Callers that gave up (signal) no longer await it; a close must not
        // then surface as an unhandled rejection.
        this.#drain.catch(() => {})
      }
      await abortable(this.#drain, options.signal)
    }
  }

  async #nextDrain (): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    const onDrain = (): void => { resolve() }
    const onClose = (evt: StreamCloseEvent): void => { reject(evt.error ?? new StreamStateError('stream closed while waiting to send')) }
    this.#stream.addEventListener('drain', onDrain)
    this.#stream.addEventListener('close', onClose)
    try {
      await promise
    } finally {
      this.#stream.removeEventListener('drain', onDrain)
      this.#stream.removeEventListener('close', onClose)
      this.#drain = undefined
    }
  }
}

function invalid (message: string, cause?: unknown, details?: Record<string, unknown>): DwError {
  return new DwError('INVALID_MESSAGE', message, { cause, details })
}

function varintLength (n: number): number {
  let length = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    length++
  }
  return length
}

function writeVarint (n: number, out: Uint8Array): number {
  let offset = 0
  while (n >= 128) {
    out[offset++] = (n % 128) | 0x80
    n = Math.floor(n / 128)
  }
  out[offset++] = n
  return offset
}
