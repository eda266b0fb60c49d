import { DwError } from '../../errors.ts'
import { CHUNK_BYTES } from './messages.ts'

/**
 * The smallest window, a quarter of a second of data at 1 Mbit/s: pieces
 * (a quarter of the window) stay at 8 KiB or more, so per-message costs
 * stay small on any link. It is also what a sync message can wait behind
 * on a thin link with a short round trip, where the window stays this
 * small: 64 KiB made a 100-record change arrive 0.42 s later while a file
 * transferred at 1 Mbit/s (bench:link, docs/benchmarks.md).
 */
export const MIN_WINDOW = 32 * 1024
/** Above what a LAN needs: 8 MiB at ~156 MB/s (a libp2p stream on loopback) is ~50 ms of data. */
export const MAX_WINDOW = 8 * 1024 * 1024
/** How much file data, in time at the measured rate, may queue ahead of a sync message. */
export const QUEUE_TARGET_MS = 150
/** Delivery-rate samples kept; the window follows the highest (see `ack`). */
const RATE_SAMPLES = 8
/** A rate sample spans at least this long (and at least one round trip), so one early ack does not make it. */
const MIN_SAMPLE_MS = 50

export interface SendWindowOptions {
  /** Milliseconds, for tests; default performance.now. */
  now?: () => number
}

/**
 * The server's side of blob flow control (messages.ts, `ack`): how many
 * bytes it may have sent and not had acknowledged.
 *
 * Without it, the server wrote file chunks as fast as Yamux took them, and
 * Yamux's window grows to 16 MiB on a saturated link (its RTT estimate is
 * taken with the link already full), so megabytes of file sat in the
 * sender's TCP queue and every sync message on the connection waited
 * behind them: 52.9 s for 100 changed records at 1 Mbit/s.
 *
 * The window is what the link delivers in a round trip plus a quarter of a
 * second: W = rate x (min RTT + QUEUE_TARGET_MS), within MIN_WINDOW and
 * MAX_WINDOW. `rate` is measured from the acknowledgements (bytes acked per
 * ms over at least a round trip), the highest of the last few samples;
 * `min RTT` is the shortest time from sending a piece to its
 * acknowledgement. While the window is what holds the sender back, a
 * sample is at most W / RTT, so W grows whenever the round trip is shorter
 * than min RTT + QUEUE_TARGET_MS (nothing queued) and stops growing once
 * about QUEUE_TARGET_MS of data waits in the queues: on a LAN it reaches
 * MAX_WINDOW within a few round trips; at 1 Mbit/s it stays between
 * MIN_WINDOW and ~95 kB (with a 600 ms round trip). A sample taken while
 * the sender was not held back by the window (yielding to records, reading
 * a slow disk) says more about the sender than the link, and counts only
 * when it is higher.
 */
export class SendWindow {
  readonly #now: () => number
  #sent = 0
  #acked = 0
  #window = MIN_WINDOW
  #minRtt = Infinity
  #rates: number[] = []
  /** Pieces sent and not yet wholly acknowledged: where each ends, and when it went. */
  readonly #pieces: Array<{ end: number, at: number }> = []
  #sample: { at: number, acked: number, limited: boolean }
  #waiter: { bytes: number, resolve: () => void, reject: (err: Error) => void } | undefined
  #error: Error | undefined

  constructor (options: SendWindowOptions = {}) {
    this.#now = options.now ?? (() => performance.now())
    this.#sample = { at: this.#now(), acked: 0, limited: false }
  }

  /**
   * How much to send next: a quarter of the window, up to a whole chunk
   * (1 MiB). Several pieces in flight keep acknowledgements coming while
   * the window is full. The window, not the piece, bounds what a sync
   * message waits behind (a piece is within it), so a piece is as large as
   * that allows: 16-30 KiB on a thin link, 1 MiB on a LAN,
   * where 64 KiB pieces cost half as much CPU again per MiB moved
   * (measured over libp2p on loopback: 40 against 27 ms/MiB, sender and
   * receiver together).
   */
  get piece (): number {
    return Math.min(CHUNK_BYTES, Math.floor(this.#window / 4))
  }

  /** Bytes the sender may have unacknowledged now. */
  get size (): number {
    return this.#window
  }

  get unacked (): number {
    return this.#sent - this.#acked
  }

  get sent (): number {
    return this.#sent
  }

  /** Why the window failed, if it did. */
  get failure (): Error | undefined {
    return this.#error
  }

  /**
   * Resolves once `bytes` more fit in the window (at once when nothing is
   * unacknowledged, so a piece larger than the window still goes). Rejects
   * once the window failed (`fail`, or a bad acknowledgement).
   */
  async room (bytes: number): Promise<void> {
    if (this.#error !== undefined) throw this.#error
    if (this.#fits(bytes)) return
    if (this.#waiter !== undefined) throw new Error('one sender at a time')
    this.#sample.limited = true
    const { promise, resolve, reject } = Promise.withResolvers<void>()
    this.#waiter = { bytes, resolve, reject }
    await promise
  }

  /** `bytes` were handed to the stream. */
  sending (bytes: number): void {
    this.#sent += bytes
    this.#pieces.push({ end: this.#sent, at: this.#now() })
  }

  /**
   * The peer has taken in `bytes` in all. Throws INVALID_MESSAGE (and fails
   * the window) for a count below the last or above what was sent: a peer's
   * counts are input, and a wrong one would open the window unbounded or
   * wedge it shut.
   */
  ack (bytes: number): void {
    if (this.#error !== undefined) throw this.#error
    if (!Number.isSafeInteger(bytes) || bytes < this.#acked || bytes > this.#sent) {
      const err = new DwError('INVALID_MESSAGE', `ack of ${String(bytes)} bytes: ${this.#acked} were acknowledged already and ${this.#sent} sent`)
      this.fail(err)
      throw err
    }
    const now = this.#now()
    let covered: { end: number, at: number } | undefined
    while (this.#pieces.length > 0 && (this.#pieces[0] as { end: number }).end <= bytes) covered = this.#pieces.shift()
    if (covered !== undefined) this.#minRtt = Math.min(this.#minRtt, now - covered.at)
    this.#acked = bytes
    const span = now - this.#sample.at
    const rtt = Number.isFinite(this.#minRtt) ? this.#minRtt : 0
    if (span >= Math.max(MIN_SAMPLE_MS, rtt) && bytes > this.#sample.acked) {
      const rate = (bytes - this.#sample.acked) / span
      if (this.#sample.limited || rate > this.#rate()) {
        this.#rates.push(rate)
        if (this.#rates.length > RATE_SAMPLES) this.#rates.shift()
        this.#window = Math.round(Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, this.#rate() * (rtt + QUEUE_TARGET_MS))))
      }
      this.#sample = { at: now, acked: bytes, limited: this.#waiter !== undefined }
    }
    const waiter = this.#waiter
    if (waiter !== undefined && this.#fits(waiter.bytes)) {
      this.#waiter = undefined
      waiter.resolve()
    }
  }

  /** Ends the window: a sender waiting for room, and any later, gets `err`. */
  fail (err: Error): void {
    this.#error ??= err
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(this.#error)
  }

  #fits (bytes: number): boolean {
    return this.#sent === this.#acked || this.#sent - this.#acked + bytes <= this.#window
  }

  /** Bytes per ms: the highest recent sample, 0 before any. */
  #rate (): number {
    return this.#rates.length === 0 ? 0 : Math.max(...this.#rates)
  }
}
