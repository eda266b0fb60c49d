import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createReadStream } from 'node:fs'
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { DwError, isDwError } from '../../errors.ts'
import type { MessageStream } from '../../message-stream.ts'
import type { BlobStore } from '../blob-store.ts'
import { BLOB_PROTOCOL_VERSION, parseBlobResponse } from './messages.ts'
import { RateLimit } from '../../rate-limit.ts'

/** How the fetcher reaches peers; the node provides it over libp2p. */
export interface BlobTransport {
  /** Trusted peers connected right now. */
  connectedPeers: () => string[]
  openStream: (peerId: string) => Promise<MessageStream>
}

export interface FetcherOptions {
  store: BlobStore
  /** Where partial downloads are kept across disconnects and restarts. */
  partialDir: string
  transport: BlobTransport
  /** Transfers at once from one peer (default 2); more wait their turn, in priority order (see #slot). */
  perPeer?: number
  /** Optional cap on received bytes per second, all transfers together. */
  bytesPerSecond?: number
  /** A peer sent bytes that do not hash to what was asked. */
  onLie?: (peerId: string, sha256: string) => void
  /** A per-peer cap on received bytes (its link profile), on top of `bytesPerSecond`. */
  receivePacer?: (peerId: string) => { take: (bytes: number) => Promise<void> } | undefined
  /**
   * Why a background fetch may not use this peer right now (metered,
   * outside its files window), or undefined when it may. Asked when a
   * source is chosen and again for every chunk, so a window that closes
   * pauses the transfer (it resumes from its partial file).
   */
  backgroundRefusal?: (peerId: string) => string | undefined
}

/**
 * A peer that sends no byte at all for this long, mid-request, is given up on
 * (the next attempt resumes). Bytes, not messages: on a thin link one 1 MiB
 * chunk may take minutes, and that is progress.
 */
const IDLE_MS = 10_000
/** `has` is a quick question: a peer that has not answered in this long counts as having nothing. */
const ASK_MS = 5_000

/** The next message; the stream is aborted with BLOB_UNAVAILABLE after `ms` without a byte. */
async function readWithin (stream: MessageStream, ms: number, peer: string): Promise<IteratorResult<unknown, undefined>> {
  // A FramedStream counts the bytes it receives; other streams are judged by whole messages.
  const bytes = (): number => (stream as { bytesReceived?: number }).bytesReceived ?? 0
  let seen = bytes()
  let quietSince = Date.now()
  let timer: NodeJS.Timeout | undefined
  const silence = new Promise<never>((_resolve, reject) => {
    timer = setInterval(() => {
      if (bytes() !== seen) {
        seen = bytes()
        quietSince = Date.now()
      } else if (Date.now() - quietSince >= ms) {
        const err = new DwError('BLOB_UNAVAILABLE', `peer ${peer} went silent for ${ms / 1000} s`)
        stream.abort(err)
        reject(err)
      }
    }, Math.min(1000, ms / 4))
  })
  silence.catch(() => {})
  try {
    return await Promise.race([stream.read(), silence])
  } finally {
    clearInterval(timer)
  }
}

export interface Transfer {
  sha256: string
  peer: string | undefined
  done: number
  total: number | undefined
  /** Waiting for one of `peer`'s transfer slots (`perPeer`), behind transfers that go first. */
  queued?: true
}

interface Running {
  promise: Promise<void>
  transfer: Transfer
  /** The size the record declares (from the caller that started the transfer): a peer announcing another is not downloaded from. */
  size: number | undefined
  generation: number
  /**
   * Peers whose bytes are in the partial file ('?' for bytes from an earlier
   * run). A mismatch proves a peer lied only when it supplied every byte.
   */
  sources: Set<string>
  /** Nobody waits for it (a pin, a copy, a queued file): link profiles may hold it back. A caller who waits makes it false. */
  background: boolean
}

interface SlotWait { entry: Running, arrival: number, grant: () => void }

/** Whether `a` takes a free slot before `b`: waited for, then smaller (unknown last), then earlier. */
function goesFirst (a: SlotWait, b: SlotWait): boolean {
  if (a.entry.background !== b.entry.background) return !a.entry.background
  const sizeA = a.entry.size ?? Infinity
  const sizeB = b.entry.size ?? Infinity
  if (sizeA !== sizeB) return sizeA < sizeB
  return a.arrival < b.arrival
}

/** What a caller of `fetch` knows of the blob. */
export interface FetchOptions {
  /**
   * The size the record declares. A peer that announces another size is
   * not downloaded from; when every peer that has the blob does, `fetch`
   * rejects with CONFLICT (the record is wrong, not the peers).
   */
  size?: number
  /** Fetch even though the store has the blob (its references here are not trusted; a peer serving it vouches for it). */
  force?: boolean
  /**
   * Nobody is waiting (pins, copies, the want queue): peers whose link
   * profile refuses background transfers now are not used, and when only
   * they could serve, `fetch` rejects with BLOB_UNAVAILABLE saying so
   * (`details.heldBack`). A download someone waits for uses any peer.
   */
  background?: boolean
}

/**
 * Fetches blobs from peers: one transfer per blob however many callers wait
 * for it; the source chosen among connected peers that say they have it;
 * bytes appended to a partial file that survives disconnects, so the next
 * attempt resumes where the last stopped; the size checked against the
 * record's before the first byte, and the hash verified before the blob
 * becomes visible in the store. A peer whose bytes do not match is not
 * asked for that blob again, and the partial data is discarded.
 */
export class BlobFetcher extends EventEmitter<{ progress: [string] }> {
  readonly #o: FetcherOptions
  readonly #running = new Map<string, Running>()
  readonly #busy = new Map<string, number>()
  /** Transfers waiting for a slot, per peer; see #slot for the order. */
  readonly #slotQueue = new Map<string, SlotWait[]>()
  #arrivals = 0
  /** Peers that sent bad bytes for a blob: never asked for that blob again. */
  readonly #liars = new Map<string, Set<string>>()
  readonly #rate: RateLimit | undefined

  constructor (options: FetcherOptions) {
    super()
    this.#o = options
    this.#rate = options.bytesPerSecond !== undefined && options.bytesPerSecond > 0 ? new RateLimit(options.bytesPerSecond) : undefined
    this.setMaxListeners(0)
  }

  transfers (): Transfer[] {
    return [...this.#running.values()].map(r => ({ ...r.transfer }))
  }

  partialPath (sha256: string): string {
    return join(this.#o.partialDir, sha256)
  }

  /** Which of `hashes` each of `peers` (default: every connected peer) has. */
  async whoHas (hashes: string[], peers: string[] = this.#o.transport.connectedPeers()): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>()
    await Promise.all(peers.map(async peer => {
      // A peer that does not answer in time (see #ask) counts as having nothing.
      out.set(peer, await this.#ask(peer, hashes).catch(() => []))
    }))
    return out
  }

  /**
   * Resolves once the blob is in the store. Throws BLOB_UNAVAILABLE when no
   * connected peer has it (or every one failed), CONFLICT when every peer
   * that has it has another size than `options.size`.
   */
  async fetch (sha256: string, options: FetchOptions = {}): Promise<void> {
    if (options.force !== true && await this.#o.store.has(sha256)) return
    let running = this.#running.get(sha256)
    if (running === undefined) {
      const transfer: Transfer = { sha256, peer: undefined, done: 0, total: undefined }
      const entry: Running = { transfer, size: options.size, generation: 0, promise: Promise.resolve(), sources: new Set(), background: options.background === true }
      entry.promise = this.#run(entry).finally(() => {
        this.#running.delete(sha256)
        this.emit('progress', sha256)
      })
      this.#running.set(sha256, entry)
      running = entry
    } else if (options.background !== true) {
      running.background = false
      try {
        await running.promise
      } catch (err) {
        // The background fetch joined here had already left out the peers
        // its link profiles hold back; someone waiting may use them.
        if (!isDwError(err, 'BLOB_UNAVAILABLE') || err.details?.heldBack === undefined) throw err
        await this.fetch(sha256, { ...options, background: false })
      }
      return
    }
    await running.promise
  }

  /** The transfer of a blob in progress, if any (for streaming it as it arrives). */
  running (sha256: string): { transfer: Transfer, generation: () => number, done: Promise<void> } | undefined {
    const r = this.#running.get(sha256)
    if (r === undefined) return undefined
    return { transfer: r.transfer, generation: () => r.generation, done: r.promise }
  }

  async #run (entry: Running): Promise<void> {
    const { sha256 } = entry.transfer
    await mkdir(this.#o.partialDir, { recursive: true })
    const liars = this.#liars.get(sha256)
    // Peers held back are not even asked: a `has` costs bytes on a metered link too.
    const heldBack: Array<{ peer: string, reason: string }> = []
    const askable = this.#o.transport.connectedPeers().filter(peer => {
      const reason = entry.background ? this.#o.backgroundRefusal?.(peer) : undefined
      if (reason !== undefined) heldBack.push({ peer, reason })
      return reason === undefined
    })
    const havers = [...(await this.whoHas([sha256], askable))]
      .filter(([peer, has]) => has.includes(sha256) && liars?.has(peer) !== true)
      .map(([peer]) => peer)
    if (havers.length === 0 && heldBack.length > 0) {
      throw new DwError('BLOB_UNAVAILABLE', `held back by link profiles: ${heldBack.map(h => `peer ${h.peer} is ${h.reason}`).join('; ')}, and no other connected peer has this file; it is fetched in the background once allowed, or now by a download`, {
        details: { retryAfterSeconds: 30, heldBack }
      })
    }
    if (havers.length === 0) {
      throw new DwError('BLOB_UNAVAILABLE', 'no connected peer has this file right now; it will be fetched when one does', { details: { retryAfterSeconds: 30 } })
    }
    // Least busy first, so one slow site does not take every transfer.
    havers.sort((a, b) => (this.#busy.get(a) ?? 0) - (this.#busy.get(b) ?? 0))
    let lastErr: unknown
    let failures = 0
    let sizeConflicts = 0
    for (let i = 0; i < havers.length; i++) {
      const peer = havers[i] as string
      try {
        await this.#fromPeer(entry, peer)
        return
      } catch (err) {
        lastErr = err
        failures += 1
        // Not a lie we can prove: the record may be what is wrong. Try the next peer.
        if (isDwError(err, 'CONFLICT')) sizeConflicts += 1
        if (isDwError(err, 'INTEGRITY_MISMATCH')) {
          const alone = entry.sources.size === 1 && entry.sources.has(peer)
          await this.#restart(entry)
          if (alone) {
            this.#liars.set(sha256, (this.#liars.get(sha256) ?? new Set()).add(peer))
            this.#o.onLie?.(peer, sha256)
          } else {
            // Bytes from several sources: who lied is unknown. Ask this
            // peer again for the whole file; if it alone is wrong, it lied.
            i -= 1
          }
        }
      }
    }
    if (sizeConflicts === failures) {
      throw new DwError('CONFLICT', `the file's record declares ${String(entry.size)} bytes, but every peer that has sha256 ${sha256} has a different size: the record is wrong, nothing was fetched`, { cause: lastErr })
    }
    throw new DwError('BLOB_UNAVAILABLE', `could not fetch the file from any connected peer: ${(lastErr as Error)?.message ?? 'unknown error'}`, {
      cause: lastErr,
      details: { retryAfterSeconds: 30 }
    })
  }

  async #restart (entry: Running): Promise<void> {
    await rm(this.partialPath(entry.transfer.sha256), { force: true })
    entry.sources.clear()
    entry.generation += 1
    entry.transfer.done = 0
    this.emit('progress', entry.transfer.sha256)
  }

  async #fromPeer (entry: Running, peer: string): Promise<void> {
    await this.#slot(entry, peer)
    try {
      await this.#download(entry, peer)
    } finally {
      this.#release(peer)
    }
  }

  /**
   * Takes one of `peer`'s `perPeer` slots, waiting in its queue when all
   * are taken. The queue is served in order (issue 11): transfers someone
   * waits for before background ones (pins, copies, the want queue); then
   * the smaller declared size first (many small files are useful sooner
   * than one large one; unknown sizes last); then first come. The order is
   * decided when a slot frees, from each entry as it is then, so a waiting
   * caller who joins a queued background fetch moves it up.
   */
  async #slot (entry: Running, peer: string): Promise<void> {
    const queue = this.#slotQueue.get(peer) ?? []
    if ((this.#busy.get(peer) ?? 0) < (this.#o.perPeer ?? 2) && queue.length === 0) {
      this.#busy.set(peer, (this.#busy.get(peer) ?? 0) + 1)
      return
    }
    this.#slotQueue.set(peer, queue)
    entry.transfer.peer = peer
    entry.transfer.queued = true
    const { promise, resolve } = Promise.withResolvers<void>()
    queue.push({ entry, arrival: this.#arrivals++, grant: resolve })
    await promise
    delete entry.transfer.queued
  }

  #release (peer: string): void {
    const busy = (this.#busy.get(peer) ?? 1) - 1
    if (busy > 0) this.#busy.set(peer, busy)
    else this.#busy.delete(peer)
    const queue = this.#slotQueue.get(peer)
    if (queue === undefined) return
    while (queue.length > 0 && (this.#busy.get(peer) ?? 0) < (this.#o.perPeer ?? 2)) {
      const next = queue.reduce((best, w) => goesFirst(w, best) ? w : best)
      queue.splice(queue.indexOf(next), 1)
      this.#busy.set(peer, (this.#busy.get(peer) ?? 0) + 1)
      next.grant()
    }
    if (queue.length === 0) this.#slotQueue.delete(peer)
  }

  async #download (entry: Running, peer: string): Promise<void> {
    const { sha256 } = entry.transfer
    const path = this.partialPath(sha256)
    const offset = await stat(path).then(s => s.size, () => 0)
    if (offset > 0 && entry.sources.size === 0) entry.sources.add('?')
    entry.sources.add(peer)
    // Hash while receiving (the bytes already here first, when resuming), so
    // the finished file can be verified without reading it again.
    const hash = createHash('sha256')
    if (offset > 0) for await (const chunk of createReadStream(path, { end: offset - 1 })) hash.update(chunk as Buffer)
    entry.transfer.peer = peer
    entry.transfer.done = offset
    const stream = await this.#o.transport.openStream(peer)
    let file: FileHandle | undefined
    try {
      // `ack`: this fetcher acknowledges what it takes in, so the server can
      // keep the bytes in flight short of what delays a sync message on
      // the same connection (messages.ts). It acknowledges only if the
      // server's answer says it reads them: an older one never would.
      await stream.send({ t: 'get', v: BLOB_PROTOCOL_VERSION, sha256, offset, ack: true })
      const head = parseBlobResponse((await readWithin(stream, IDLE_MS, peer)).value)
      if (head.t === 'error') {
        if (head.code === 'INVALID_INPUT' && offset > 0) await this.#restart(entry)
        throw new DwError(head.code === 'BLOB_NOT_FOUND' ? 'BLOB_NOT_FOUND' : 'BLOB_UNAVAILABLE', `peer ${peer}: ${head.message}`)
      }
      if (head.t !== 'blob') throw new DwError('INVALID_MESSAGE', `expected blob, got ${head.t}`)
      if (entry.size !== undefined && head.size !== entry.size) {
        throw new DwError('CONFLICT', `peer ${peer} has ${head.size} bytes under sha256 ${sha256}; the record declares ${entry.size}`)
      }
      file = await open(path, 'a')
      entry.transfer.total = head.size
      let at = offset
      while (true) {
        const next = await readWithin(stream, IDLE_MS, peer)
        if (next.done === true) throw new DwError('BLOB_UNAVAILABLE', `peer ${peer} ended the transfer at ${at} of ${head.size} bytes`)
        const msg = parseBlobResponse(next.value)
        if (msg.t === 'end') break
        if (msg.t !== 'chunk') throw new DwError('INVALID_MESSAGE', `unexpected ${msg.t} during a transfer`)
        const refusal = entry.background ? this.#o.backgroundRefusal?.(peer) : undefined
        if (refusal !== undefined) {
          throw new DwError('BLOB_UNAVAILABLE', `paused at ${at} of ${head.size} bytes: peer ${peer} is ${refusal} now; the transfer resumes from there once allowed`, { details: { retryAfterSeconds: 30, heldBack: [{ peer, reason: refusal }] } })
        }
        if (at + msg.data.length > head.size) throw new DwError('INTEGRITY_MISMATCH', `peer ${peer} sent more bytes than the ${head.size} it announced`)
        await file.write(msg.data)
        hash.update(msg.data)
        at += msg.data.length
        entry.transfer.done = at
        this.emit('progress', sha256)
        await Promise.all([this.#rate?.take(msg.data.length), this.#o.receivePacer?.(peer)?.take(msg.data.length)])
        // After the pacing: the server's window then follows the rate this
        // node takes bytes in, not the rate they could arrive at.
        if (head.ack === true) await stream.send({ t: 'ack', bytes: at - offset })
      }
      if (at !== head.size) throw new DwError('INTEGRITY_MISMATCH', `peer ${peer} sent ${at} of ${head.size} bytes`)
      await file.sync()
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      await file?.close()
    }
    await stream.close().catch(() => {})
    if (hash.digest('hex') !== sha256) throw new DwError('INTEGRITY_MISMATCH', `peer ${peer} sent bytes that do not hash to ${sha256}`)
    // Verified: a filesystem store takes the file by rename; any other store
    // copies it, hashing again, and refuses a mismatch all the same.
    const adopted = await this.#o.store.adoptVerifiedFile?.(path, sha256).then(() => true, () => false)
    if (adopted !== true) {
      await this.#o.store.put(createReadStream(path), { expectedSha256: sha256 })
      await rm(path, { force: true })
    }
  }

  async #ask (peer: string, hashes: string[]): Promise<string[]> {
    const stream = await this.#o.transport.openStream(peer)
    try {
      await stream.send({ t: 'has', v: BLOB_PROTOCOL_VERSION, hashes })
      const reply = parseBlobResponse((await readWithin(stream, ASK_MS, peer)).value)
      if (reply.t !== 'have') throw new DwError('INVALID_MESSAGE', `expected have, got ${reply.t}`)
      const asked = new Set(hashes)
      return reply.hashes.filter(h => asked.has(h))
    } finally {
      await stream.close().catch(() => {})
    }
  }
}
