import { randomBytes } from 'node:crypto'
import { DwError } from '../../errors.ts'
import { FIRST_MESSAGE_MS, readFirst } from '../../message-stream.ts'
import { DOCS_MESSAGE_BYTES, FEATURES, OFFER_BATCH, PROTOCOL_VERSION, parsePullerMessage, wireItems, type DocItem, type Feature, type HeadsItem } from './messages.ts'
import { shortenSigs } from '../../crdt/sig-entries.ts'
import { emptyStats, type MessageStream, type SessionStats, type SyncableStore } from './types.ts'
import { chooseCodec, compressed } from './compression.ts'

/** Offers in flight before the server waits for the puller's wants. */
const WINDOW = 4
/**
 * Offers of a live tail (a few changes each, as they are made) go out at
 * most this often. The first change after a quiet spell goes at once; the
 * rest of a burst gathers into one offer per interval instead of an offer,
 * a want, the documents and an acknowledgement for every change: on a thin
 * link each of those is a packet with ~66 bytes of TCP/IP, Noise and Yamux
 * around it.
 */
const TAIL_OFFER_MS = 50
/**
 * With `skip`, a position reached only by skipping (changes the puller sent
 * us itself) is announced in a `caught-up` this long after it is reached,
 * so a burst of echoes costs one message and one acknowledgement, not one
 * each.
 */
const SKIP_SETTLE_MS = 250
/**
 * A live-tail offer is pushed (the `push` feature) only when every document
 * in it has its latest changes stored as a chunk and they come to at most
 * this many bytes: a push is a small update on a link already in sync, and
 * anything larger goes by offer and want.
 */
const PUSH_MAX_BYTES = 256 * 1024

export interface ServeOptions {
  /** Called with the puller's acknowledged feed position (for lag reporting). */
  onAck?: (through: number) => void
  signal?: AbortSignal
  /** How long the puller has to say hello. @default FIRST_MESSAGE_MS */
  firstMessageMs?: number
  /**
   * This side of the replication log for this puller: what it acknowledged,
   * in which session. Without it (tests of the protocol alone) a
   * checkpoint is trusted on the puller's word.
   */
  log?: {
    acknowledged: (epoch: string, session: string | undefined) => Promise<number | undefined>
    record: (epoch: string, session: string, through: number) => Promise<void>
  }
  /** The puller's checkpoint could not be trusted: it starts from an earlier position (`from` in the welcome; 0 at worst). */
  onRewind?: (info: { since: number, reason: string }) => void
  /** Compress the session when the puller can read it (compression.ts). @default true */
  compression?: boolean
  /** The link to the puller is thin (metered or slow): compress harder, spending this side's CPU (compression.ts). */
  thinLink?: boolean
  /**
   * True when the puller is known to hold `key` at exactly these heads (it
   * offered them to us: offered-heads.ts); such a document is not offered
   * back to it.
   */
  peerHas?: (key: string, heads: string[]) => boolean
  /** Wire features this side may use when the puller understands them (messages.ts FEATURES). @default all */
  features?: readonly Feature[]
  /**
   * Told true when records start moving to the puller (an offer awaits its
   * want, or documents are being sent) and false when none are: file
   * transfers to the same peer yield to records while it is true.
   */
  onBusy?: (busy: boolean) => void
}

/**
 * Where the puller's session starts, and why not where it asked. A
 * checkpoint is trusted only as far as this store's log says this puller
 * acknowledged in the session it names: a store restored from a backup, or
 * rolled back with its disk, has an older log (and may reuse the sequence
 * numbers the checkpoint covers), so the two disagree and the puller
 * compares by heads from the last position both agree on (from 0 when the
 * log does not know the session) instead of skipping what it never
 * received. CouchDB compares replication logs the same way. A session cut
 * after the puller saved a checkpoint but before its acknowledgement was
 * logged here resumes from the last logged one, not from 0.
 */
async function startFrom (hello: { epoch: string, since: number, session?: string }, store: SyncableStore, log: ServeOptions['log']): Promise<{ from: number, reason?: string }> {
  if (hello.since === 0) return { from: 0 }
  if (hello.epoch !== store.epoch) return { from: 0, reason: 'its checkpoint is from another epoch of this store' }
  if (log === undefined) {
    if (hello.since > store.seq) return { from: 0, reason: `its checkpoint (${hello.since}) is past this store's feed (${store.seq}): the store went back (a restore or a rollback)` }
    return { from: hello.since }
  }
  const acknowledged = await log.acknowledged(hello.epoch, hello.session)
  if (acknowledged === undefined) {
    return { from: 0, reason: 'this store\'s replication log does not know its checkpoint\'s session (this store was restored or rolled back, or the session is old)' }
  }
  // Never past the feed: a log restored with its store is as old as it.
  const from = Math.min(hello.since, acknowledged, store.seq)
  if (from < hello.since) {
    return { from, reason: `this store's log holds its acknowledgement up to ${from} in that session, not ${hello.since} (an acknowledgement lost with a cut connection, or this store was restored or rolled back): resuming from there` }
  }
  return { from }
}

/**
 * Serves one pull: walks this node's changes feed from the puller's
 * checkpoint and offers (key, heads) in batches; the puller answers each
 * offer with the keys it lacks and the heads it has, and gets back only the
 * changes it is missing. Offers are pipelined, WINDOW batches ahead, so a
 * large catch-up costs no round trip per batch; memory stays bounded by the
 * window. In live mode it then keeps offering as the feed grows.
 */
/** `stats` fills in as the session goes, so a caller can report a live session while it lasts. */
export async function serveSync (plain: MessageStream, store: SyncableStore, options: ServeOptions = {}, stats: SessionStats = emptyStats()): Promise<SessionStats> {
  const first = await readFirst(plain, options.firstMessageMs ?? FIRST_MESSAGE_MS)
  if (first.done === true) throw new DwError('INVALID_MESSAGE', 'stream ended before hello')
  const hello = parsePullerMessage(first.value)
  if (hello.t !== 'hello') throw new DwError('INVALID_MESSAGE', `expected hello, got ${hello.t}`)
  const session = randomBytes(8).toString('hex')
  const { from, reason } = await startFrom(hello, store, options.log)
  if (reason !== undefined) options.onRewind?.({ since: hello.since, reason })
  const codec = chooseCodec(hello.z, options.compression !== false)
  const features = (options.features ?? FEATURES).filter(f => hello.f?.includes(f) === true)
  const shortSigs = features.includes('sig8')
  const skipEmpty = features.includes('skip')
  const binaryHeads = features.includes('hbin')
  const pushing = features.includes('push') && hello.live && store.latestChanges !== undefined
  await plain.send({ t: 'welcome', v: PROTOCOL_VERSION, epoch: store.epoch, head: store.seq, from, session, ...(codec === undefined ? {} : { z: codec }), ...(features.length === 0 ? {} : { f: features }) })
  // Everything after the welcome, both ways, in the codec it names.
  const stream = codec === undefined ? plain : compressed(plain, codec, { thin: options.thinLink === true })

  let cursor = from
  let batch = 0
  let outstanding = 0
  const inFlight: Array<{ batch: number, keys: Set<string> }> = []
  // Pushes not yet acknowledged, by batch: each may still get one want. They count as outstanding until acknowledged.
  const pushedOut = new Map<number, { through: number, keys: Set<string>, wanted: boolean }>()
  const release = (): void => {
    outstanding -= 1
    if (outstanding === 0) options.onBusy?.(false)
    poke()
  }
  let ended = false
  // A poke that lands while the offer loop is busy must not be lost: `dirty`
  // makes the next nap return at once.
  let dirty = false
  let wake: (() => void) | undefined
  const poke = (): void => { dirty = true; wake?.(); wake = undefined }
  const nap = async (): Promise<void> => {
    if (!dirty) await new Promise<void>(resolve => { wake = resolve })
    dirty = false
  }
  let timer: NodeJS.Timeout | undefined
  /** Pokes once `ms` from now (the offer loop naps until then). */
  const pokeIn = (ms: number): void => {
    clearTimeout(timer)
    timer = setTimeout(poke, Math.max(0, ms))
  }
  const onChange = (): void => { poke() }
  store.on('change', onChange)
  options.signal?.addEventListener('abort', poke)

  const answerWants = async (): Promise<void> => {
    try {
      while (true) {
        const next = await stream.read()
        if (next.done === true) return
        const msg = parsePullerMessage(next.value)
        if (msg.t === 'ack') {
          // Logged before anything else hears of it; never past what was offered.
          await options.log?.record(store.epoch, session, Math.min(msg.through, cursor))
          options.onAck?.(msg.through)
          for (const [batch, pushed] of pushedOut) {
            if (pushed.through > msg.through) continue
            pushedOut.delete(batch)
            release()
          }
        } else if (msg.t === 'want') {
          const pushed = pushedOut.get(msg.batch)
          if (pushed !== undefined) {
            // At most one want per push, for documents it pushed.
            if (pushed.wanted) throw new DwError('INVALID_MESSAGE', `a second want for batch ${msg.batch}`)
            if (msg.items.some(([key]) => !pushed.keys.has(key))) throw new DwError('INVALID_MESSAGE', `want for batch ${msg.batch} names a record that was not pushed`)
            pushed.wanted = true
            await sendDocs(stream, store, msg.batch, msg.items, stats, shortSigs)
            continue
          }
          // Exactly one want per offer, in offer order; only offered keys.
          const offered = inFlight.shift()
          if (offered === undefined || msg.batch !== offered.batch) throw new DwError('INVALID_MESSAGE', `want for batch ${msg.batch}, which is not the next offer awaiting one`)
          if (msg.items.some(([key]) => !offered.keys.has(key))) throw new DwError('INVALID_MESSAGE', `want for batch ${msg.batch} names a record that was not offered`)
          await sendDocs(stream, store, msg.batch, msg.items, stats, shortSigs)
          release()
        } else {
          throw new DwError('INVALID_MESSAGE', 'hello twice')
        }
      }
    } finally {
      ended = true
      poke()
    }
  }

  const offer = async (): Promise<void> => {
    // The documents everything else is judged under go first, whatever the
    // checkpoint: a node that has just joined learns it is in the mesh
    // before the records arrive, instead of parking them all.
    const first = store.firstKeys?.() ?? []
    if (first.length > 0) {
      const metas = await store.metas(first)
      const items: HeadsItem[] = []
      first.forEach((key, i) => {
        const meta = metas[i]
        if (meta !== undefined && meta.local !== true && options.peerHas?.(key, meta.heads) !== true) items.push([key, meta.heads])
      })
      if (items.length > 0) {
        if (outstanding++ === 0) options.onBusy?.(true)
        inFlight.push({ batch, keys: new Set(items.map(([key]) => key)) })
        await stream.send({ t: 'offer', batch: batch++, through: cursor, items: wireItems(items, binaryHeads) })
      }
    }
    let caughtUpAt = -1
    /** Since the last caught-up: whether an offer went out, and when the first skip happened. */
    let offeredSince = false
    let skippedAt: number | undefined
    let tailOfferAt = -Infinity
    /** The last read reached the feed's end: while an offer is out, new changes wait without a read each. */
    let tailing = false
    while (!ended && options.signal?.aborted !== true) {
      if (outstanding >= WINDOW || (hello.live && tailing && outstanding > 0)) { await nap(); continue }
      const entries = await store.feedSince(cursor, OFFER_BATCH)
      tailing = entries.length < OFFER_BATCH
      if (entries.length === 0) {
        if (caughtUpAt !== cursor) {
          // Skips alone settle for a moment first (live sessions only: a one-shot pull waits for this to end).
          const settleIn = !offeredSince && skippedAt !== undefined && hello.live ? skippedAt + SKIP_SETTLE_MS - Date.now() : 0
          if (settleIn > 0) {
            pokeIn(settleIn)
            await nap()
            continue
          }
          caughtUpAt = cursor
          offeredSince = false
          skippedAt = undefined
          await stream.send({ t: 'caught-up', head: cursor })
        }
        if (!hello.live && outstanding === 0) return
        await nap()
        continue
      }
      // The live tail: a few entries, the feed's end. While an offer is out,
      // or until its interval has passed, more changes gather (Nagle's idea,
      // as TCP does for small writes); a full batch of catch-up never waits.
      if (tailing && hello.live) {
        const waitMs = tailOfferAt + TAIL_OFFER_MS - Date.now()
        if (outstanding > 0) { await nap(); continue }
        if (waitMs > 0) { pokeIn(waitMs); await nap(); continue }
      }
      const metas = await store.metas(entries.map(e => e.key))
      const items: HeadsItem[] = []
      entries.forEach((e, i) => {
        const meta = metas[i]
        if (meta !== undefined && meta.local !== true && options.peerHas?.(e.key, meta.heads) !== true) items.push([e.key, meta.heads])
      })
      cursor = (entries.at(-1) as { seq: number }).seq
      if (items.length === 0 && skipEmpty) {
        skippedAt ??= Date.now()
        continue
      }
      if (entries.length < OFFER_BATCH) tailOfferAt = Date.now()
      offeredSince = true
      if (outstanding++ === 0) options.onBusy?.(true)
      const pushable = pushing && tailing ? await latestOf(store, items, stats, shortSigs) : undefined
      if (pushable !== undefined) {
        pushedOut.set(batch, { through: cursor, keys: new Set(items.map(([key]) => key)), wanted: false })
        await stream.send({ t: 'push', batch: batch++, through: cursor, items: pushable })
        continue
      }
      inFlight.push({ batch, keys: new Set(items.map(([key]) => key)) })
      await stream.send({ t: 'offer', batch: batch++, through: cursor, items: wireItems(items, binaryHeads) })
    }
  }

  try {
    const answering = answerWants()
    // Its failure is awaited below; this only keeps it from counting as unhandled meanwhile.
    answering.catch(() => {})
    await offer()
    // Non-live: everything is offered and answered; the puller closes its end.
    await answering
  } finally {
    if (outstanding > 0) options.onBusy?.(false)
    clearTimeout(timer)
    store.off('change', onChange)
    options.signal?.removeEventListener('abort', poke)
  }
  return stats
}

/** Each document's latest changes, when all of them are stored as pushable chunks and together small enough; counted as sent. */
async function latestOf (store: SyncableStore, items: HeadsItem[], stats: SessionStats, shortSigs: boolean): Promise<DocItem[] | undefined> {
  const out: DocItem[] = []
  let size = 0
  const found = await store.latestChanges?.(items.map(([key]) => key)) ?? []
  for (const [i, [key]] of items.entries()) {
    const latest = found[i]
    if (latest === undefined) return undefined
    const sigs = shortSigs ? shortenSigs(latest.sigs) : latest.sigs
    size += latest.bytes.length + sigs.length
    if (size > PUSH_MAX_BYTES) return undefined
    out.push([key, latest.bytes, sigs])
  }
  stats.recordsSent += out.length
  stats.bytesOut += size
  return out
}

async function sendDocs (stream: MessageStream, store: SyncableStore, batch: number, wants: HeadsItem[], stats: SessionStats, shortSigs: boolean): Promise<void> {
  let items: DocItem[] = []
  let size = 0
  const keys = wants.map(([key]) => key)
  const metas = await store.metas(keys)
  // A puller without the document gets the stored bytes as they are, read in
  // one batch: no Automerge load on this side, which keeps initial sync cheap.
  // Either way the changes travel with their signatures, which the puller checks.
  const fresh = wants.filter(([, heads]) => heads.length === 0).map(([key]) => key)
  const freshAt = new Map(fresh.map((key, i) => [key, i]))
  const whole = await store.savedMany(fresh)
  for (const [i, [key, theirHeads]] of wants.entries()) {
    // Only what was offered may be fetched: never a local-only document.
    if (metas[i] === undefined || metas[i]?.local === true) continue
    const found = theirHeads.length === 0 ? whole[freshAt.get(key) as number] : await store.changesSince(key, theirHeads)
    if (found === undefined || found.bytes.length === 0) continue
    const bytes = found.bytes
    const sigs = shortSigs ? shortenSigs(found.sigs) : found.sigs
    if (size > 0 && size + bytes.length > DOCS_MESSAGE_BYTES) {
      await stream.send({ t: 'docs', batch, items, last: false })
      items = []
      size = 0
    }
    items.push([key, bytes, sigs])
    size += bytes.length + sigs.length
    stats.recordsSent += 1
    stats.bytesOut += bytes.length + sigs.length
  }
  await stream.send({ t: 'docs', batch, items, last: true })
}
