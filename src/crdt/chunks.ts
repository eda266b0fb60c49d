import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { DwError } from '../errors.ts'

/**
 * Automerge's binary format read just far enough to split bytes into
 * chunks and learn each change's hash, dependencies and message, without
 * `Automerge.decodeChange`: that turns every op into JS (slow for large
 * changes) and throws on values JS cannot hold (an int64 beyond 2^53),
 * which must not stop a batch from a peer.
 *
 * A chunk: magic (4 bytes), checksum (4), type (1: 0 a whole document,
 * 1 a change, 2 a deflated change), body length (unsigned LEB128), body.
 * A change body starts: dependencies (count, then 32-byte hashes), actor
 * (length, bytes), seq, start op (unsigned LEB128), time (signed LEB128),
 * message (length, UTF-8). A change's hash is SHA-256 of its chunk from
 * the type byte on.
 */
const MAGIC = [0x85, 0x6f, 0x4a, 0x83]

export interface Chunk { type: number, bytes: Uint8Array }

export interface ChangeHeader { hash: string, deps: string[], message: string | null }

function bad (what: string): never {
  throw new DwError('INVALID_MESSAGE', `malformed Automerge bytes: ${what}`)
}

class Reader {
  readonly bytes: Uint8Array
  at: number
  constructor (bytes: Uint8Array, at = 0) {
    this.bytes = bytes
    this.at = at
  }

  uleb (): number {
    let value = 0
    let shift = 0
    while (true) {
      if (this.at >= this.bytes.length || shift > 49) bad('truncated number')
      const b = this.bytes[this.at++] as number
      value += (b & 0x7f) * 2 ** shift
      shift += 7
      if ((b & 0x80) === 0) return value
    }
  }

  skipLeb (): void {
    while (true) {
      if (this.at >= this.bytes.length) bad('truncated number')
      if (((this.bytes[this.at++] as number) & 0x80) === 0) return
    }
  }

  take (n: number): Uint8Array {
    if (this.at + n > this.bytes.length) bad('truncated field')
    const out = this.bytes.subarray(this.at, this.at + n)
    this.at += n
    return out
  }
}

export function splitChunks (bytes: Uint8Array): Chunk[] {
  const out: Chunk[] = []
  let at = 0
  while (at < bytes.length) {
    if (at + 10 > bytes.length || MAGIC.some((m, i) => bytes[at + i] !== m)) bad('not a chunk')
    const type = bytes[at + 8] as number
    if (type > 2) bad(`unknown chunk type ${type}`)
    const r = new Reader(bytes, at + 9)
    const end = r.uleb() + r.at
    if (end > bytes.length) bad('truncated chunk')
    out.push({ type, bytes: bytes.subarray(at, end) })
    at = end
  }
  return out
}

/** Hash, dependencies and message of one change chunk (type 1 or 2). */
export function changeHeader (chunk: Uint8Array): ChangeHeader {
  const type = chunk[8]
  if (type !== 1 && type !== 2) bad('not a change chunk')
  if (type === 2) return deflatedChangeHeader(chunk)
  const r = new Reader(chunk, 9)
  const body = r.take(r.uleb())
  const b = new Reader(body)
  const count = b.uleb()
  if (count > 10_000) bad('too many dependencies')
  const deps: string[] = []
  for (let i = 0; i < count; i++) deps.push(Buffer.from(b.take(32)).toString('hex'))
  b.take(b.uleb()) // actor
  b.skipLeb() // seq
  b.skipLeb() // start op
  b.skipLeb() // time
  const messageLength = b.uleb()
  const message = messageLength === 0 ? null : Buffer.from(b.take(messageLength)).toString('utf8')
  return { hash: createHash('sha256').update(chunk.subarray(8)).digest('hex'), deps, message }
}

/** Automerge hands out changes uncompressed; a deflated one (rare) is decoded the slow way, its failures made a clear refusal. */
function deflatedChangeHeader (chunk: Uint8Array): ChangeHeader {
  try {
    const d = A.decodeChange(chunk)
    return { hash: d.hash as string, deps: d.deps, message: d.message }
  } catch (err) {
    bad(`an undecodable compressed change (${(err as Error).message.slice(0, 100)})`)
  }
}

/**
 * The whole document as one chunk with its columns left uncompressed.
 * `Automerge.save` deflates each large column, record by record, which
 * leaves a sync compressor (zstd over a batch of documents,
 * src/peer/sync/compression.ts) nothing to find across records: a batch
 * of saved datasets shrank to 0.9x their JSON, uncompressed ones to 0.6x.
 * It also loads a little faster. On disk LevelDB compresses its blocks.
 */
export function saveUncompressed (doc: A.Doc<unknown>): Uint8Array {
  return A.getBackend(doc).saveNoCompress()
}
