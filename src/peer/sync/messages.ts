import { DwError } from '../../errors.ts'
import { ReplicatedKinds } from '../../crdt/keys.ts'
import { SIG_ENTRY } from '../../crdt/sig-entries.ts'

/**
 * Wire messages of `/dw/sync/2.0.0` (CBOR, varint length-prefixed). See
 * docs/sync-protocol.md. Every message from a peer is validated here before
 * anything acts on it; a message that fails is a protocol violation that
 * ends the stream.
 */
export const SYNC_PROTOCOL = '/dw/sync/2.0.0'
/** 2: every document travels with its changes' signatures, and the vouched fast path of 1 is gone. */
export const PROTOCOL_VERSION = 2
/** Entries per offer: bounds the memory of one batch on both sides. */
export const OFFER_BATCH = 256
/** Documents per `docs` message are cut at about this many bytes. */
export const DOCS_MESSAGE_BYTES = 1024 * 1024
/** Hard limit on one frame. A single document larger than this cannot sync. */
export const MAX_SYNC_MESSAGE = 16 * 1024 * 1024

/**
 * Wire features a session may use, negotiated like compression: the puller
 * lists those it understands in `hello.f`, the server names those in use in
 * `welcome.f`. A node of the previous wire version sends and reads none.
 *
 * - `sig8`: a signature entry in `docs` is 72 bytes, the first 8 bytes of
 *   the change hash and the 64-byte signature, instead of the whole 32-byte
 *   hash (96): the receiver computes every hash from the change itself and
 *   finds its signature by the prefix; a signature matched to the wrong
 *   change simply fails to verify, so the prefix decides nothing.
 * - `skip`: the server sends no offer whose entries the puller already
 *   holds (documents it offered us itself at those heads, or local-only
 *   ones): such an offer would cost four messages and a round trip for
 *   nothing, once per change echoed back on a live link. `caught-up` then
 *   means "everything up to `head` is offered or settled", and a puller
 *   with no offer pending moves its checkpoint there.
 * - `hbin`: heads in offers and wants travel as 32-byte CBOR byte strings
 *   instead of 64 hex characters. Besides the bytes saved before
 *   compression, the compressor then finds an offered head again, byte for
 *   byte, inside the document that follows it (a saved document holds its
 *   heads): 10% fewer bytes from the server in an initial sync, measured
 *   in-process (scratch measurement, 1,024 datasets: 280 -> 252 B each).
 *   Either form is read whatever was negotiated; a node of the previous
 *   wire version is only ever sent hex.
 * - `push`: on a live link the server may send a `push` instead of an
 *   `offer`: the changes of each document's latest update with their
 *   signatures, without waiting for a want. A puller that holds what those
 *   changes build on applies them as they are; for any other document it
 *   sends a `want` for that batch, answered as for an offer. It saves a
 *   round trip, the want and the offered heads for every change made while
 *   a peer is connected.
 */
export const FEATURES = ['sig8', 'skip', 'hbin', 'push'] as const
export type Feature = typeof FEATURES[number]

/** Offer or want items as sent: heads as bytes under `hbin`, hex otherwise. */
export function wireItems (items: HeadsItem[], binary: boolean): Array<[string, string[] | Uint8Array[]]> {
  return binary ? items.map(([key, heads]) => [key, heads.map(h => Buffer.from(h, 'hex'))]) : items
}

/** Bytes of one signature entry in a `docs` item: 96 (hash + signature), or 72 with `sig8` (src/crdt/sig-entries.ts). */
export { SIG_ENTRY as SIG_ENTRY_FULL, SIG_ENTRY_SHORT } from '../../crdt/sig-entries.ts'

const MAX_ITEMS = 1024
const MAX_HEADS = 256
/**
 * A document key: `<kind>/<uuid>` for a kind that replicates (records, the
 * mesh roster, each node's own document). A key of any other kind is a
 * protocol violation here; the trust rules refuse anything else later too.
 */
const DOC_KEY = new RegExp(`^(${ReplicatedKinds.join('|')})/[0-9a-f-]{36}$`)

/** [document key, its Automerge heads] */
export type HeadsItem = [string, string[]]
/**
 * [document key, Automerge bytes (a whole document or the changes the
 * puller lacks), the signatures of those changes packed as 32-byte hash and
 * 64-byte Ed25519 signature each]
 */
export type DocItem = [string, Uint8Array, Uint8Array]

export type PullerMessage =
  /**
   * `session`: the server's session under which the puller's checkpoint was acknowledged (see serve.ts).
   * `z`: the compression codecs the puller reads (compression.ts); absent from older pullers.
   * `f`: the wire features the puller understands (FEATURES); absent from older pullers.
   */
  | { t: 'hello', v: number, epoch: string, since: number, live: boolean, session?: string, z?: string[], f?: string[] }
  | { t: 'want', batch: number, items: HeadsItem[] }
  | { t: 'ack', through: number }

export type ServerMessage =
  /**
   * `session`: names this session in the server's replication log; the puller keeps it with its checkpoint.
   * `z`: the codec every later message uses, both ways; absent: none (an older server, or the puller offered none).
   * `f`: the wire features in use (FEATURES); absent: none.
   */
  | { t: 'welcome', v: number, epoch: string, head: number, from: number, session?: string, z?: string, f?: string[] }
  | { t: 'offer', batch: number, through: number, items: HeadsItem[] }
  | { t: 'docs', batch: number, items: DocItem[], last: boolean }
  /** Under `push`: like an offer, with each document's latest changes instead of its heads; a want for it is optional. */
  | { t: 'push', batch: number, through: number, items: DocItem[] }
  | { t: 'caught-up', head: number }

function bad (what: string): never {
  throw new DwError('INVALID_MESSAGE', `malformed sync message: ${what}`)
}

function isObject (m: unknown): m is Record<string, unknown> {
  return typeof m === 'object' && m !== null && !Array.isArray(m) && !(m instanceof Uint8Array)
}

function seq (v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${field} must be a non-negative integer`)
  return v
}

function session (v: unknown): { session?: string } {
  if (v === undefined) return {}
  if (typeof v !== 'string' || !/^[0-9a-f]{1,64}$/.test(v)) bad('session must be up to 64 hex characters')
  return { session: v }
}

function codecs (v: unknown): { z?: string[] } {
  if (v === undefined) return {}
  if (!Array.isArray(v) || v.length > 8 || v.some(c => typeof c !== 'string' || c.length > 16)) bad('z must be a short list of codec names')
  return { z: v as string[] }
}

function features (v: unknown): { f?: string[] } {
  if (v === undefined) return {}
  if (!Array.isArray(v) || v.length > 8 || v.some(c => typeof c !== 'string' || c.length > 16)) bad('f must be a short list of feature names')
  return { f: v as string[] }
}

function codec (v: unknown): { z?: string } {
  if (v === undefined) return {}
  if (typeof v !== 'string' || v.length > 16) bad('z must be a codec name')
  return { z: v }
}

function key (v: unknown): string {
  if (typeof v !== 'string' || v.length > 64 || !DOC_KEY.test(v)) bad('bad document key')
  return v
}

function heads (v: unknown): string[] {
  if (!Array.isArray(v) || v.length > MAX_HEADS) bad('heads must be a short array')
  return v.map((h: unknown) => {
    if (h instanceof Uint8Array) {
      if (h.length !== 32) bad('a binary head must be 32 bytes')
      return Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('hex')
    }
    if (typeof h !== 'string' || !/^[0-9a-f]{64}$/.test(h)) bad('a head must be 64 hex characters or 32 bytes')
    return h
  })
}

function items<T> (v: unknown, item: (x: unknown) => T): T[] {
  if (!Array.isArray(v) || v.length > MAX_ITEMS) bad(`items must be an array of at most ${MAX_ITEMS}`)
  return v.map(item)
}

function headsItem (x: unknown): HeadsItem {
  if (!Array.isArray(x) || x.length !== 2) bad('an item must be [key, heads]')
  return [key(x[0]), heads(x[1])]
}

function docItem (x: unknown, sigEntry: number): DocItem {
  if (!Array.isArray(x) || x.length !== 3 || !(x[1] instanceof Uint8Array) || !(x[2] instanceof Uint8Array)) bad('a document item must be [key, bytes, signatures]')
  if (x[2].length % sigEntry !== 0) bad(`signatures must be ${sigEntry} bytes each`)
  return [key(x[0]), x[1], x[2]]
}

export function parsePullerMessage (m: unknown): PullerMessage {
  if (!isObject(m)) bad('not a map')
  switch (m.t) {
    case 'hello':
      if (m.v !== PROTOCOL_VERSION) throw new DwError('INVALID_MESSAGE', `unsupported sync protocol version ${String(m.v)}`)
      if (typeof m.epoch !== 'string' || m.epoch.length > 64) bad('epoch')
      if (typeof m.live !== 'boolean') bad('live')
      return { t: 'hello', v: m.v, epoch: m.epoch, since: seq(m.since, 'since'), live: m.live, ...session(m.session), ...codecs(m.z), ...features(m.f) }
    case 'want':
      return { t: 'want', batch: seq(m.batch, 'batch'), items: items(m.items, headsItem) }
    case 'ack':
      return { t: 'ack', through: seq(m.through, 'through') }
    default:
      return bad(`unknown type ${JSON.stringify(m.t)?.slice(0, 20)}`)
  }
}

/** `sigEntry`: the signature entry size of this session (SIG_ENTRY_SHORT once `sig8` is in use). */
export function parseServerMessage (m: unknown, sigEntry: number = SIG_ENTRY): ServerMessage {
  if (!isObject(m)) bad('not a map')
  switch (m.t) {
    case 'welcome':
      if (m.v !== PROTOCOL_VERSION) throw new DwError('INVALID_MESSAGE', `unsupported sync protocol version ${String(m.v)}`)
      if (typeof m.epoch !== 'string' || m.epoch.length === 0 || m.epoch.length > 64) bad('epoch')
      return { t: 'welcome', v: m.v, epoch: m.epoch, head: seq(m.head, 'head'), from: seq(m.from, 'from'), ...session(m.session), ...codec(m.z), ...features(m.f) }
    case 'offer':
      return { t: 'offer', batch: seq(m.batch, 'batch'), through: seq(m.through, 'through'), items: items(m.items, headsItem) }
    case 'docs':
      if (typeof m.last !== 'boolean') bad('last')
      return { t: 'docs', batch: seq(m.batch, 'batch'), items: items(m.items, x => docItem(x, sigEntry)), last: m.last }
    case 'push':
      return { t: 'push', batch: seq(m.batch, 'batch'), through: seq(m.through, 'through'), items: items(m.items, x => docItem(x, sigEntry)) }
    case 'caught-up':
      return { t: 'caught-up', head: seq(m.head, 'head') }
    default:
      return bad(`unknown type ${JSON.stringify(m.t)?.slice(0, 20)}`)
  }
}
