// Wire-level helpers for the protocol fuzz tests: message generators for
// the sync protocol (SYNC_PROTOCOL, version PROTOCOL_VERSION) and
// /dw/blob/1.0.0 (valid shapes, corrupted fields, damaged frames),
// hostile-but-well-formed record documents, and stream utilities.
import * as A from '@automerge/automerge'
import type { Stream } from '@libp2p/interface'
import type { FramedStream } from '../../src/peer/framed-stream.ts'
import { PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'
import { Rng, nastyNumber, randomJson, randomValue, varint } from './rng.ts'

export const KINDS = ['user', 'dataset', 'model', 'report'] as const
export const PLURAL: Record<string, string> = { user: 'users', dataset: 'datasets', model: 'models', report: 'reports' }
export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Counting semaphore: keeps the fuzzer's own streams under the node's per-protocol limits (except in the bursts that test them). */
export class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []
  constructor (n: number) { this.#free = n }
  async take (): Promise<() => void> {
    while (this.#free === 0) await new Promise<void>(resolve => this.#waiting.push(resolve))
    this.#free -= 1
    let released = false
    return () => {
      if (released) return
      released = true
      this.#free += 1
      this.#waiting.shift()?.()
    }
  }
}

/** Reads from a framed stream until it ends, fails or `ms` pass; returns what arrived and how it ended. */
export async function drain (framed: FramedStream, ms: number, onMessage?: (m: any) => Promise<boolean | void> | boolean | void): Promise<{ messages: any[], end: 'done' | 'error' | 'timeout' }> {
  const messages: any[] = []
  const signal = AbortSignal.timeout(ms)
  try {
    while (true) {
      const next = await framed.read({ signal })
      if (next.done === true) return { messages, end: 'done' }
      messages.push(next.value)
      if (onMessage !== undefined && (await onMessage(next.value)) === true) return { messages, end: 'done' }
    }
  } catch (err) {
    return { messages, end: signal.aborted ? 'timeout' : 'error' }
  }
}

/** Corrupts one field of a valid message: wrong type, huge or negative number, long string, removed, or an extra field. */
export function corrupt (rng: Rng, msg: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...msg }
  const fields = Object.keys(out)
  const edits = rng.range(1, 3)
  for (let i = 0; i < edits; i++) {
    const field = rng.bool(0.85) ? rng.pick(fields) : rng.pick(['zz', 'T', '', '__proto__'])
    switch (rng.int(8)) {
      case 0: delete out[field]; break
      case 1: out[field] = nastyNumber(rng); break
      case 2: out[field] = rng.string(rng.bool(0.2) ? 100_000 : 100); break
      case 3: out[field] = rng.bytes(rng.size(100)); break
      case 4: out[field] = randomValue(rng, 3, { items: 50 }); break
      case 5: out[field] = rng.pick([null, true, false, [], {}, undefined]); break
      case 6: out[field] = Array.isArray(out[field]) ? [...(out[field] as unknown[]), randomValue(rng, 3, { items: 20 })] : [out[field]]; break
      default: out[field] = rng.pick(['hello', 'want', 'ack', 'docs', 'get', 'has', 'nonsense'])
    }
  }
  return out
}

export function randomHeads (rng: Rng, n: number): string[] {
  return Array.from({ length: n }, () => rng.bool(0.9) ? rng.hex(64) : rng.pick(['', rng.hex(63), rng.hex(65), rng.hex(64).toUpperCase(), 'zz'.repeat(32)]))
}

export function randomKey (rng: Rng, known: string[]): unknown {
  return rng.weighted<unknown>([
    [4, `${rng.pick(KINDS)}/${rng.uuid()}`],
    [3, known.length > 0 ? rng.pick(known) : 'dataset/x'],
    [1, `dataset/../../${rng.string(20)}`],
    [1, `${rng.pick(['admin', 'local', 'meta', 'feed', ''])}/${rng.uuid()}`],
    [1, rng.string(80)],
    [1, randomValue(rng, 4, { items: 5 })]
  ])
}

/** One valid sync message from a puller, with valid-looking but random content. */
export function pullerMessage (rng: Rng, epoch: string, known: string[]): Record<string, unknown> {
  switch (rng.int(3)) {
    case 0: return { t: 'hello', v: PROTOCOL_VERSION, epoch: rng.bool() ? epoch : rng.hex(16), since: rng.pick([0, 1, rng.int(1e6), 2 ** 53 - 1]), live: rng.bool() }
    case 1: return { t: 'want', batch: rng.int(8), items: Array.from({ length: rng.size(40) }, () => [randomKey(rng, known), randomHeads(rng, rng.int(3))]) }
    default: return { t: 'ack', through: rng.pick([0, rng.int(1e6), 2 ** 53 - 1]) }
  }
}

export function serverMessage (rng: Rng, epoch: string, known: string[]): Record<string, unknown> {
  switch (rng.int(4)) {
    case 0: return { t: 'welcome', v: PROTOCOL_VERSION, epoch, head: rng.int(1000), from: 0 }
    case 1: return { t: 'offer', batch: rng.int(4), through: rng.int(1000), items: Array.from({ length: rng.size(20) }, () => [randomKey(rng, known), randomHeads(rng, rng.int(3))]) }
    case 2: return { t: 'docs', batch: rng.int(4), items: Array.from({ length: rng.size(5) }, () => [randomKey(rng, known), rng.bytes(rng.size(200)), randomSigs(rng)]), last: rng.bool() }
    default: return { t: 'caught-up', head: rng.int(1000) }
  }
}

/** The signatures field of a docs item: mostly whole 96-byte entries (hash and signature) of random bytes, sometimes a bad length. */
export function randomSigs (rng: Rng): Uint8Array {
  return rng.bool(0.8) ? rng.bytes(96 * rng.int(4)) : rng.bytes(rng.size(300))
}

export function blobRequest (rng: Rng, hashes: string[]): Record<string, unknown> {
  const hash = (): string => rng.bool(0.6) && hashes.length > 0 ? rng.pick(hashes) : rng.hex(64)
  return rng.bool()
    ? { t: 'get', v: 1, sha256: hash(), offset: rng.pick([0, 1, rng.int(2_000_000), 2 ** 53 - 1]) }
    : { t: 'has', v: 1, hashes: Array.from({ length: rng.size(50) }, hash) }
}

export function blobResponse (rng: Rng, size: number): Record<string, unknown> {
  switch (rng.int(5)) {
    case 0: return { t: 'blob', size }
    case 1: return { t: 'chunk', data: rng.bytes(rng.range(1, 4096)) }
    case 2: return { t: 'end' }
    case 3: return { t: 'have', hashes: [rng.hex(64)] }
    default: return { t: 'error', code: rng.string(100), message: rng.string(1000) }
  }
}

/** A frame of the encoded message, possibly damaged at the byte level. */
export function frame (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(varint(body.length).length + body.length)
  const prefix = varint(body.length)
  out.set(prefix)
  out.set(body, prefix.length)
  return out
}

export function sendRaw (stream: Stream, bytes: Uint8Array): void {
  try { stream.send(bytes) } catch {}
}

/**
 * A record document shaped like the real ones, with random fields corrupted:
 * valid Automerge, hostile content. Its one change records `message` (the
 * claims a signer makes) when given; `hash` is that change's, for signing.
 * Fields in `keep` are left as the template has them.
 */
export function hostileRecord (rng: Rng, template: Record<string, unknown>, kind: string, id: string, message?: string, keep: string[] = []): { bytes: Uint8Array, hash: string } | undefined {
  const doc: Record<string, unknown> = JSON.parse(JSON.stringify(template))
  doc.kind = keep.includes('kind') || rng.bool(0.85) ? kind : randomJson(rng, 4)
  doc.id = keep.includes('id') || rng.bool(0.9) ? id : randomJson(rng, 4)
  const fields = [...Object.keys(doc), 'versions', 'files', 'tags', 'deletions', 'training', 'username', 'role', 'metadata', 'subject', 'name', 'title', 'owner', 'description'].filter(f => !keep.includes(f))
  const edits = rng.range(1, 5)
  for (let i = 0; i < edits; i++) {
    const field = rng.pick(fields)
    if (rng.bool(0.15)) delete doc[field]
    else doc[field] = rng.bool(0.3) ? { [rng.string(8) || 'x']: randomJson(rng, 3) } : randomJson(rng, 2)
  }
  // Never take over the local admin's name: that would be a different test.
  if (doc.username === 'admin') doc.username = 'not-admin'
  try {
    const made = A.change(A.init<any>(), message === undefined ? {} : { message }, d => { Object.assign(d, doc) })
    return { bytes: A.save(made), hash: A.getHeads(made)[0] as string }
  } catch {
    return undefined
  }
}
