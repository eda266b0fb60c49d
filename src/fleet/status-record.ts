import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { CountingTokenizer } from '../peer/framed-stream.ts'
import { RecordKinds, type RecordKind } from '../crdt/keys.ts'

/**
 * A node's status: a small record each node makes about itself, signs with
 * its identity key, and every node relays, keeping only the latest per
 * origin. It is not an Automerge document: a status made every minute
 * would grow a document's history without bound, and nobody needs the
 * history, only the latest word. So each new status replaces the last.
 *
 * On the wire and on disk a status is the CBOR bytes of `{v, node, seq,
 * body}` and the origin's Ed25519 signature over `DOMAIN || bytes`.
 * Relays forward the bytes as they got them, so the signature holds
 * through any number of hops. See docs/sync-protocol.md, "Node status".
 */

/**
 * Domain separation: the same key signs changes ("dw-mesh change v1\n" then a
 * 32-byte hash) and Noise handshakes; a status signature can be neither.
 */
const DOMAIN = new TextEncoder().encode('dw-status-1\n')

/** Format of the signed bytes; a status of another version is refused as unsupported (not audited). */
export const STATUS_VERSION = 1
/** Largest encoded status accepted (its peer list is capped well below this). */
export const MAX_STATUS_BYTES = 16 * 1024
/** Peers listed in one status; a node with more lists the first and counts the rest in `peersTotal`. */
export const MAX_STATUS_PEERS = 64
/** CBOR items in one status: its byte cap allows far fewer real fields than this. */
const MAX_ITEMS = 4096
const MAX_NAME = 100
const MAX_TEXT = 200

/** One link of the node, as it saw it when it made the status. */
export interface PeerLag {
  peer: string
  /** The name this node knows the peer by (its peer book or the roster). */
  name?: string
  connected: boolean
  /** When this node last held everything the peer had offered (ms since epoch). */
  lastSyncAt?: number
  /** Changes in the peer's feed not yet applied here (sync status `behindPeer`); null: not known yet. */
  lagRecords: number | null
  /**
   * Seconds this node may be missing the peer's changes: 0 while connected
   * and caught up (nothing known to be missing), otherwise the time since
   * it last was caught up; null when it never was.
   */
  lagSeconds: number | null
}

/** What a node says about itself. Every field is checked on receipt (`validateBody`). */
export interface StatusBody {
  /** The site's name (config.json `name`). */
  name: string
  /** The software version it runs (package.json). */
  version: string
  /** When the running process started (ms since epoch). */
  startedAt: number
  peers: PeerLag[]
  /** Peers in its book; more than `peers.length` when the list was capped. */
  peersTotal: number
  /** Live (not deleted) records by kind. */
  records: Partial<Record<RecordKind, number>>
  /** Bytes of the files it holds for live records. */
  blobBytes: number
  /** Free and total bytes of the disk holding its data directory; null: not known. */
  disk: { free: number, total: number } | null
  /** Files of live records below their copy target, by its last count; null: not counted yet. */
  belowTarget: number | null
  /** Its last backup (ms since epoch) and whether it worked; null: none yet. */
  lastBackup: { at: number, ok: boolean } | null
  /** Documents from peers in its quarantine. */
  quarantined: number
  /** Its readiness (`GET /readyz`), and the failing checks when not ready. */
  ready: boolean
  notReady?: string[]
}

export interface NodeStatus {
  /** The origin: the node the status is about, and the only one that can sign it. */
  node: string
  /** Milliseconds since the epoch on the origin's clock when it made the status; strictly increasing per origin. */
  seq: number
  body: StatusBody
}

/** A status as it travels and is stored: the exact signed bytes and the signature. */
export interface SignedStatus { bytes: Uint8Array, sig: Uint8Array }

/** Why a received status was not kept. */
export type RefusalReason =
  | 'oversized' | 'malformed' | 'bad-signature' | 'unsupported'
  | 'not-member' | 'self' | 'stale' | 'too-frequent'

/** Refusals that only a misbehaving peer causes (an honest relay forwards only statuses it verified): audited. */
export const HOSTILE_REASONS: ReadonlySet<RefusalReason> = new Set(['oversized', 'malformed', 'bad-signature'])

export class StatusRefusal extends Error {
  override readonly name = 'StatusRefusal'
  readonly reason: RefusalReason
  /** The origin the status claimed, once known. */
  readonly node: string | undefined

  constructor (reason: RefusalReason, message: string, node?: string) {
    super(message)
    this.reason = reason
    this.node = node
  }
}

function signedBytes (bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN.length + bytes.length)
  out.set(DOMAIN)
  out.set(bytes, DOMAIN.length)
  return out
}

/** Encodes and signs this node's status with its identity key. */
export async function signStatus (key: PrivateKey, status: NodeStatus): Promise<SignedStatus> {
  const bytes = cborEncode({ v: STATUS_VERSION, node: status.node, seq: status.seq, body: status.body }, { ignoreUndefinedProperties: true })
  if (bytes.length > MAX_STATUS_BYTES) throw new Error(`a status of ${bytes.length} bytes is over the ${MAX_STATUS_BYTES}-byte limit`)
  return { bytes, sig: await key.sign(signedBytes(bytes)) }
}

/**
 * Decodes and checks a status from anywhere (a peer, the disk): size,
 * shape, and the origin's signature. Throws StatusRefusal. Who may send
 * it, and whether it is newer than the one held, is the book's business.
 */
export async function openStatus (signed: unknown): Promise<{ status: NodeStatus, signed: SignedStatus }> {
  if (!Array.isArray(signed) || signed.length !== 2 || !(signed[0] instanceof Uint8Array) || !(signed[1] instanceof Uint8Array)) {
    throw new StatusRefusal('malformed', 'a status must be [bytes, signature]')
  }
  const [bytes, sig] = signed as [Uint8Array, Uint8Array]
  if (bytes.length > MAX_STATUS_BYTES) throw new StatusRefusal('oversized', `a status of ${bytes.length} bytes is over the ${MAX_STATUS_BYTES}-byte limit`)
  let raw: unknown
  try {
    raw = cborDecode(bytes, { rejectDuplicateMapKeys: true, tokenizer: new CountingTokenizer(bytes, MAX_ITEMS) })
  } catch (err) {
    throw new StatusRefusal('malformed', `a status that is not valid CBOR: ${(err as Error).message}`)
  }
  const m = record(raw, 'status')
  if (m.v !== STATUS_VERSION) {
    if (Number.isSafeInteger(m.v)) throw new StatusRefusal('unsupported', `status format ${String(m.v)} is not understood here (${STATUS_VERSION} is)`)
    throw new StatusRefusal('malformed', 'a status without a format version')
  }
  const node = peerIdText(m.node, 'node')
  const seq = time(m.seq, 'seq')
  let body: StatusBody
  try {
    body = validateBody(m.body)
  } catch (err) {
    throw new StatusRefusal('malformed', (err as Error).message, node)
  }
  if (sig.length !== 64 || !await verifies(node, bytes, sig)) throw new StatusRefusal('bad-signature', `the signature is not ${node}'s`, node)
  return { status: { node, seq, body }, signed: { bytes, sig } }
}

async function verifies (node: string, bytes: Uint8Array, sig: Uint8Array): Promise<boolean> {
  try {
    const key = peerIdFromString(node).publicKey
    if (key?.type !== 'Ed25519') return false
    return await key.verify(signedBytes(bytes), sig)
  } catch {
    return false
  }
}

// Validation: every field of a hostile status. What is kept is rebuilt from
// the known fields only, so unknown extras (a newer node's) are ignored and
// nothing unchecked reaches the API.

class Malformed extends Error {}

function fail (message: string): never {
  throw new Malformed(message)
}

function record (v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
    throw new StatusRefusal('malformed', `${what} must be a map`)
  }
  return v as Record<string, unknown>
}

function map (v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) fail(`${what} must be a map`)
  return v as Record<string, unknown>
}

function count (v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) fail(`${what} must be a whole number of at least 0`)
  return v as number
}

function time (v: unknown, what: string): number {
  // From 2001 to 2255 in ms: anything else is not a clock reading.
  if (!Number.isSafeInteger(v) || (v as number) < 1e12 || (v as number) > 9e12) throw new StatusRefusal('malformed', `${what} must be a time in ms since the epoch`)
  return v as number
}

function text (v: unknown, what: string, max: number, min = 0): string {
  if (typeof v !== 'string' || v.length < min || v.length > max) fail(`${what} must be text of ${min} to ${max} characters`)
  return v
}

function peerIdText (v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(v)) throw new StatusRefusal('malformed', `${what} must be a peer id`)
  return v
}

function maybe<T> (v: unknown, read: (v: unknown) => T): T | null {
  return v === null ? null : read(v)
}

function bool (v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') fail(`${what} must be true or false`)
  return v
}

function peerLag (v: unknown, i: number): PeerLag {
  const m = map(v, `peers[${i}]`)
  let peer: string
  try {
    peer = peerIdText(m.peer, `peers[${i}].peer`)
  } catch (err) {
    fail((err as Error).message)
  }
  const out: PeerLag = {
    peer,
    connected: bool(m.connected, `peers[${i}].connected`),
    lagRecords: maybe(m.lagRecords, x => count(x, `peers[${i}].lagRecords`)),
    lagSeconds: maybe(m.lagSeconds, x => count(x, `peers[${i}].lagSeconds`))
  }
  if (m.name !== undefined) out.name = text(m.name, `peers[${i}].name`, MAX_NAME)
  if (m.lastSyncAt !== undefined) out.lastSyncAt = count(m.lastSyncAt, `peers[${i}].lastSyncAt`)
  return out
}

/** The body of a status, checked field by field and rebuilt from the known fields. Throws StatusRefusal 'malformed'. */
export function validateBody (v: unknown): StatusBody {
  try {
    const m = map(v, 'body')
    if (!Array.isArray(m.peers) || m.peers.length > MAX_STATUS_PEERS) fail(`body.peers must be a list of at most ${MAX_STATUS_PEERS}`)
    const records: Partial<Record<RecordKind, number>> = {}
    const r = map(m.records, 'body.records')
    for (const kind of RecordKinds) if (r[kind] !== undefined) records[kind] = count(r[kind], `body.records.${kind}`)
    const body: StatusBody = {
      name: text(m.name, 'body.name', MAX_NAME, 1),
      version: text(m.version, 'body.version', 40),
      startedAt: count(m.startedAt, 'body.startedAt'),
      peers: m.peers.map(peerLag),
      peersTotal: count(m.peersTotal, 'body.peersTotal'),
      records,
      blobBytes: count(m.blobBytes, 'body.blobBytes'),
      disk: maybe(m.disk, d => {
        const dm = map(d, 'body.disk')
        return { free: count(dm.free, 'body.disk.free'), total: count(dm.total, 'body.disk.total') }
      }),
      belowTarget: maybe(m.belowTarget, x => count(x, 'body.belowTarget')),
      lastBackup: maybe(m.lastBackup, b => {
        const bm = map(b, 'body.lastBackup')
        return { at: count(bm.at, 'body.lastBackup.at'), ok: bool(bm.ok, 'body.lastBackup.ok') }
      }),
      quarantined: count(m.quarantined, 'body.quarantined'),
      ready: bool(m.ready, 'body.ready')
    }
    if (m.notReady !== undefined) {
      if (!Array.isArray(m.notReady) || m.notReady.length > 4) fail('body.notReady must be a list of at most 4')
      body.notReady = m.notReady.map((x, i) => text(x, `body.notReady[${i}]`, MAX_TEXT))
    }
    return body
  } catch (err) {
    if (err instanceof Malformed) throw new StatusRefusal('malformed', err.message)
    throw err
  }
}
