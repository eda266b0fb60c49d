import { DwError } from '../../errors.ts'
import { FEATURES, PROTOCOL_VERSION, SIG_ENTRY_FULL, SIG_ENTRY_SHORT, parseServerMessage, wireItems, type Feature, type HeadsItem } from './messages.ts'
import type { Refusal, RemoteDoc, Screening } from '../../crdt/doc-store.ts'
import type { QuotaLimits } from './quota.ts'
import { emptyStats, type Checkpoint, type MessageStream, type SessionStats, type SyncableStore } from './types.ts'
import { CODECS, compressed, isCodec, type Codec } from './compression.ts'
import { changeHeader, splitChunks, type ChangeHeader } from '../../crdt/chunks.ts'

/** Bytes of one batch held before they are applied (a batch may hold 256 documents of up to 16 MiB each). */
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024

/** Complete batches applied behind the one being read: one overlaps the worker's screening with this thread's admission. */
const APPLYING_AHEAD = 1

export interface PullOptions {
  /** Keep the session open and receive changes as the peer makes them. */
  live: boolean
  /** Saves the checkpoint; called only after the documents it covers are durable here. */
  saveCheckpoint: (checkpoint: Checkpoint) => Promise<void>
  /** Each time the puller has everything the peer offered so far. */
  onCaughtUp?: (info: { remoteHead: number, stats: SessionStats }) => void
  /** Bytes of one batch held before they are applied. @default MAX_BUFFERED_BYTES */
  maxBufferedBytes?: number
  /** Changes a batch refused: not stored, not relayed; the caller audits them. */
  onRefused?: (refused: Refusal[]) => void
  /** The peer pulled from, recorded with anything it sends that is quarantined. */
  peer?: string
  /** Counts what the peer makes this side take in; throws to end the session once it is over a quota. */
  charge?: (usage: Partial<QuotaLimits>) => void
  /** The peer could not vouch for the checkpoint (it was restored or rolled back): this session compares everything from `from`. */
  onRewind?: (info: { from: number, was: number }) => void
  /** Offer compression to the server (compression.ts). @default true */
  compression?: boolean
  /** Each offer's items as they arrive: what the server holds (offered-heads.ts). */
  onOffered?: (items: HeadsItem[]) => void
  /** Wire features offered to the server (messages.ts FEATURES). @default all */
  features?: readonly Feature[]
  /** After every applied batch. */
  onProgress?: (info: { through: number, remoteHead: number, stats: SessionStats }) => void
}

/**
 * Pulls from one peer: sends the checkpoint, answers each offer with what
 * this store lacks, applies the documents in offer order, and moves the
 * checkpoint past a batch only once that batch is on disk here. A session
 * cut at any point loses nothing acknowledged; the next one resumes from the
 * last saved checkpoint.
 */
export async function pullSync (plain: MessageStream, store: SyncableStore, checkpoint: Checkpoint, options: PullOptions): Promise<SessionStats> {
  const stats = emptyStats()
  const offered = options.compression === false ? {} : { z: [...CODECS] }
  const features = [...(options.features ?? FEATURES)]
  await plain.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: checkpoint.epoch, since: checkpoint.through, live: options.live, ...(checkpoint.session === undefined ? {} : { session: checkpoint.session }), ...offered, ...(features.length === 0 ? {} : { f: features }) })
  const first = await plain.read()
  if (first.done === true) throw new DwError('INVALID_MESSAGE', 'stream ended before welcome')
  const welcome = parseServerMessage(first.value)
  if (welcome.t !== 'welcome') throw new DwError('INVALID_MESSAGE', `expected welcome, got ${welcome.t}`)
  if (welcome.z !== undefined && (offered.z === undefined || !isCodec(welcome.z))) throw new DwError('INVALID_MESSAGE', `the server chose compression ${JSON.stringify(welcome.z)}, which was not offered`)
  if (welcome.f?.some(f => !(features as string[]).includes(f)) === true) throw new DwError('INVALID_MESSAGE', `the server chose wire features ${JSON.stringify(welcome.f)}, not all of which were offered`)
  const sigEntry = welcome.f?.includes('sig8') === true ? SIG_ENTRY_SHORT : SIG_ENTRY_FULL
  // With `skip` the server leaves out offers of what we hold; its caught-up head covers them.
  const skipping = welcome.f?.includes('skip') === true
  const binaryHeads = welcome.f?.includes('hbin') === true
  const stream = welcome.z === undefined ? plain : compressed(plain, welcome.z as Codec)
  // Checkpoints from here on carry the server's session, which its log records with our acknowledgements.
  let current: Checkpoint = { epoch: welcome.epoch, through: welcome.from, ...(welcome.session === undefined ? {} : { session: welcome.session }) }
  // Behind our checkpoint: the server's log could not vouch for it, or its feed has a new epoch (a restore or a copy).
  if (welcome.from < checkpoint.through) options.onRewind?.({ from: welcome.from, was: checkpoint.through })
  let remoteHead = welcome.head
  let savedSession = checkpoint.session
  const save = async (): Promise<void> => {
    await options.saveCheckpoint(current)
    savedSession = current.session
  }

  // Offers and pushes not yet applied, in order; `complete` once all their documents are here.
  const pending: Array<{ batch: number, through: number, docs: RemoteDoc[], wanted: Set<string>, bytes: number, complete: boolean }> = []
  let caughtUp = false
  let caughtUpHead = 0
  let acked = -1
  // Acknowledgements go out from the applying chain while the loop sends wants: one message at a time, in order.
  let sending: Promise<void> = Promise.resolve()
  const send = async (message: unknown): Promise<void> => {
    const sent = sending.then(async () => { await stream.send(message) })
    sending = sent.catch(() => {})
    await sent
  }
  const ack = async (through: number): Promise<void> => {
    await send({ t: 'ack', through })
    acked = through
  }

  const applyBuffered = async (batch: (typeof pending)[number], screening?: Screening): Promise<void> => {
    if (batch.docs.length === 0) return
    const result = await store.admitRemote(batch.docs, { ...(options.peer === undefined ? {} : { peer: options.peer }), ...(screening === undefined ? {} : { screening }) })
    batch.docs = []
    batch.bytes = 0
    stats.recordsReceived += result.changed.length
    stats.refused += result.refused.length
    stats.quarantined += result.quarantined.length
    if (result.refused.length > 0) options.onRefused?.(result.refused)
  }

  // Complete batches are applied one after another, in offer order, while
  // the loop reads on: the next batch is screened in the document checker's
  // worker while this thread admits the one before. At most APPLYING_AHEAD
  // wait, so what this side holds stays bounded.
  const applying: Array<Promise<void>> = []
  let failed: { err: unknown } | undefined
  const finishedBatch = (done: (typeof pending)[number]): void => {
    const screening = done.docs.length === 0 ? undefined : store.screenRemote?.(done.docs)
    const previous = applying.at(-1) ?? Promise.resolve()
    const step = previous.then(async () => {
      await applyBuffered(done, screening)
      current = { ...current, through: done.through }
      await save()
      await ack(done.through)
      options.onProgress?.({ through: done.through, remoteHead, stats })
    })
    // A failure ends the session at once, even while the loop waits for the
    // peer: aborting the stream ends that read. (Not a race against a
    // promise that stays pending: each race would leave it a reaction
    // holding the message read, and so every document of the session.)
    step.catch((err: unknown) => {
      if (failed !== undefined) return
      failed = { err }
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    })
    applying.push(step)
  }
  const settle = async (ahead: number): Promise<void> => {
    while (applying.length > ahead) await applying.shift()
  }
  /** Applies the complete batches at the front, in order (a push may complete before an offer ahead of it). */
  const drain = async (): Promise<void> => {
    while (pending[0]?.complete === true) finishedBatch(pending.shift() as (typeof pending)[number])
    await settle(APPLYING_AHEAD)
  }

  const receive = async (): Promise<SessionStats> => {
    while (true) {
      let next
      try {
        next = await stream.read()
      } catch (err) {
        throw failed === undefined ? err : failed.err
      }
      if (failed !== undefined) throw failed.err
      if (next.done === true) {
        await settle(0)
        if (!options.live && caughtUp && pending.length === 0) return stats
        throw new DwError('INVALID_MESSAGE', 'the peer ended the sync stream early')
      }
      const msg = parseServerMessage(next.value, sigEntry)
      switch (msg.t) {
        case 'offer': {
          if (msg.through < current.through) throw new DwError('INVALID_MESSAGE', 'offer went backwards')
          remoteHead = Math.max(remoteHead, msg.through)
          caughtUp = false
          options.onOffered?.(msg.items)
          const wants = await wantsFor(store, msg.items)
          // Before asking: a peer over its quota of new documents sends none.
          options.charge?.({ newDocuments: wants.filter(([, heads]) => heads.length === 0).length })
          pending.push({ batch: msg.batch, through: msg.through, docs: [], wanted: new Set(wants.map(([key]) => key)), bytes: 0, complete: false })
          await send({ t: 'want', batch: msg.batch, items: wireItems(wants, binaryHeads) })
          break
        }
        case 'push': {
          if (msg.through < current.through) throw new DwError('INVALID_MESSAGE', 'push went backwards')
          remoteHead = Math.max(remoteHead, msg.through)
          caughtUp = false
          options.charge?.({ documents: msg.items.length, bytes: msg.items.reduce((n, [, bytes, sigs]) => n + bytes.length + sigs.length, 0) })
          const batch: (typeof pending)[number] = { batch: msg.batch, through: msg.through, docs: [], wanted: new Set(), bytes: 0, complete: false }
          const { apply, wants, offered } = await sortPushed(store, msg.items)
          options.onOffered?.(offered)
          for (const [key, bytes, sigs] of apply) {
            batch.docs.push({ key, bytes, sigs, sigEntry })
            batch.bytes += bytes.length + sigs.length
            stats.bytesIn += bytes.length + sigs.length
          }
          pending.push(batch)
          if (wants.length === 0) {
            batch.complete = true
            await drain()
            break
          }
          // What this side cannot apply as pushed, it asks for as it would after an offer.
          options.charge?.({ newDocuments: wants.filter(([, heads]) => heads.length === 0).length })
          batch.wanted = new Set(wants.map(([key]) => key))
          await send({ t: 'want', batch: msg.batch, items: wireItems(wants, binaryHeads) })
          break
        }
        case 'docs': {
          const head = pending.find(b => !b.complete)
          if (head === undefined || head.batch !== msg.batch) throw new DwError('INVALID_MESSAGE', `documents for batch ${msg.batch} out of order`)
          options.charge?.({ documents: msg.items.length, bytes: msg.items.reduce((n, [, bytes, sigs]) => n + bytes.length + sigs.length, 0) })
          for (const [key, bytes, sigs] of msg.items) {
            // Only what this side asked for, each once: a peer cannot push
            // documents into a batch, nor send one again and again.
            if (!head.wanted.delete(key)) throw new DwError('INVALID_MESSAGE', `documents for batch ${msg.batch} include ${key}, which was not wanted or came already`)
            head.docs.push({ key, bytes, sigs, sigEntry })
            head.bytes += bytes.length + sigs.length
            stats.bytesIn += bytes.length + sigs.length
          }
          // A batch of large documents is applied as it comes rather than held
          // whole: what this side buffers stays bounded whatever a peer sends.
          // The checkpoint still moves only once the batch is complete.
          if (!msg.last && head.bytes > (options.maxBufferedBytes ?? MAX_BUFFERED_BYTES) && head === pending[0]) {
            await settle(0)
            await applyBuffered(head)
          }
          if (msg.last) {
            head.complete = true
            await drain()
          }
          break
        }
        case 'caught-up': {
          remoteHead = Math.max(remoteHead, msg.head)
          caughtUpHead = Math.max(caughtUpHead, msg.head)
          caughtUp = true
          break
        }
        default:
          throw new DwError('INVALID_MESSAGE', `unexpected ${msg.t}`)
      }
      if (caughtUp && pending.length === 0) {
        await settle(0)
        // Caught up with nothing new to apply, a session still says where it
        // stands: after a restart the server knows nothing of this puller, and
        // `syncNow` on its side waits for an acknowledgement.
        // Every offer before the caught-up is applied, so what the server skipped up to its head is settled too.
        if (skipping && caughtUpHead > current.through) {
          current = { ...current, through: caughtUpHead }
          await save()
        }
        if (acked !== current.through) {
          // The acknowledgement names this session in the peer's log: our checkpoint must name it too.
          if (savedSession !== current.session) await save()
          await ack(current.through)
        }
        options.onCaughtUp?.({ remoteHead, stats })
        if (!options.live) {
          await stream.close()
          return stats
        }
      }
    }
  }
  try {
    return await receive()
  } catch (err) {
    // A batch still being applied finishes (or fails) first: nothing of this session runs on behind the caller.
    await Promise.allSettled(applying)
    throw err
  }
}

/** What to ask for: nothing for documents we have in full, our heads for the rest. */
async function wantsFor (store: SyncableStore, offered: HeadsItem[]): Promise<HeadsItem[]> {
  const metas = await store.metas(offered.map(([key]) => key))
  const wants: HeadsItem[] = []
  for (let i = 0; i < offered.length; i++) {
    const [key, theirs] = offered[i] as HeadsItem
    const meta = metas[i]
    if (meta === undefined) {
      wants.push([key, []])
      continue
    }
    const mine = new Set(meta.heads)
    if (theirs.every(h => mine.has(h))) continue
    // Their heads differ: either they have changes we lack, or ours are newer
    // (the offer reflects our own earlier push). Only the first needs bytes.
    if (await store.hasHeads(key, theirs)) continue
    wants.push([key, meta.heads])
  }
  return wants
}

/**
 * Sorts a push: documents this side holds all of (skipped), those whose
 * pushed changes build on what this side holds (applied as they are), and
 * the rest (wanted with this side's heads, as after an offer). Also the
 * heads the server holds at least, for offered-heads.ts.
 */
async function sortPushed (store: SyncableStore, items: Array<[string, Uint8Array, Uint8Array]>): Promise<{ apply: Array<[string, Uint8Array, Uint8Array]>, wants: HeadsItem[], offered: HeadsItem[] }> {
  const apply: Array<[string, Uint8Array, Uint8Array]> = []
  const wants: HeadsItem[] = []
  const offered: HeadsItem[] = []
  const keys = items.map(([key]) => key)
  if (new Set(keys).size !== keys.length) throw new DwError('INVALID_MESSAGE', 'a push names a document twice')
  const metas = await store.metas(keys)
  for (const [i, item] of items.entries()) {
    const [key, bytes] = item
    const { hashes, heads, deps } = pushedChanges(key, bytes)
    offered.push([key, heads])
    // Decided from the heads here when they settle it (nearly always: the
    // changes build on this side's heads); otherwise by the document.
    const mine = new Set(metas[i]?.heads ?? [])
    if (hashes.every(h => mine.has(h))) continue
    if (deps.every(d => mine.has(d))) {
      apply.push(item)
      continue
    }
    if (await store.hasHeads(key, hashes)) continue
    if (await store.hasHeads(key, deps)) {
      apply.push(item)
      continue
    }
    wants.push([key, metas[i]?.heads ?? []])
  }
  return { apply, wants, offered }
}

/** The changes in a pushed item: their hashes, the newest of them, and what they build on from outside. Only plain change chunks may be pushed. */
function pushedChanges (key: string, bytes: Uint8Array): { hashes: string[], heads: string[], deps: string[] } {
  let headers: ChangeHeader[]
  try {
    const chunks = splitChunks(bytes)
    if (chunks.length === 0 || chunks.some(c => c.type !== 1)) throw new Error('a push holds only uncompressed changes')
    headers = chunks.map(c => changeHeader(c.bytes))
  } catch (err) {
    throw new DwError('INVALID_MESSAGE', `pushed changes for ${key} do not decode: ${(err as Error).message}`, { cause: err })
  }
  const hashes = new Set(headers.map(h => h.hash))
  const built = new Set(headers.flatMap(h => h.deps))
  return {
    hashes: [...hashes],
    heads: [...hashes].filter(h => !built.has(h)),
    deps: [...built].filter(d => !hashes.has(d))
  }
}
