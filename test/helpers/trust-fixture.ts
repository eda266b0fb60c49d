import { mkdtemp, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as A from '@automerge/automerge'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { openCore, type Core } from '../../src/start/core.ts'
import { DocChecker } from '../../src/crdt/doc-checker.ts'
import { Quarantine } from '../../src/crdt/quarantine.ts'
import { jsonSublevel } from '../../src/db.ts'
import type { AdmitResult, Refusal, RemoteDoc } from '../../src/crdt/doc-store.ts'
import { packSigs, sigFor, unpackSigs } from '../../src/crdt/sig-entries.ts'
import { encodeClaims, type Claims } from '../../src/trust/claims.ts'
import { ChangeSigner } from '../../src/trust/signatures.ts'
import type { Principal } from '../../src/warehouse/principal.ts'

type T = { teardown: (fn: () => Promise<void> | void) => void }

/** A node's stores (no network), its identity, and every refusal it reported. */
export interface TrustNode {
  name: string
  peerId: string
  key: PrivateKey
  core: Core
  /** This node's bootstrap admin, as a principal (its account document is not needed to act). */
  admin: Principal
  /** Refusals from admitRemote results and from parked changes judged again. */
  refusals: Refusal[]
  /** admitRemote, recording refusals. */
  admit: (items: RemoteDoc[]) => Promise<AdmitResult>
}

/**
 * A fresh node with its own Ed25519 identity, closed and removed when the
 * test ends. Like a running node, it loads what peers send in the document
 * checker's worker first, which prepares the states most changes are judged
 * on (prepared-states.ts); `guard: false` judges every change on documents
 * loaded in this thread.
 */
export async function trustNode (t: T, name: string, options: { guard?: boolean } = {}): Promise<TrustNode> {
  const dir = await mkdtemp(join(tmpdir(), `dw-trust-${name}-`))
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const core = await openCore(dir, { type: 'fs' }, { key, peerId })
  const checker = new DocChecker()
  if (options.guard !== false) {
    checker.start()
    core.docs.guardWith({ checker, quarantine: new Quarantine(jsonSublevel(core.db, 'quarantine')), maxOps: checker.limits.maxOps })
  }
  t.teardown(async () => {
    await checker.stop()
    await core.docs.flush().catch(() => {})
    await core.blobs.close()
    await core.db.close()
    await rm(dir, { recursive: true, force: true })
  })
  const refusals: Refusal[] = []
  core.docs.on('refused', r => { refusals.push(...r) })
  const admit = async (items: RemoteDoc[]): Promise<AdmitResult> => {
    const result = await core.docs.admitRemote(items)
    refusals.push(...result.refused)
    return result
  }
  return { name, peerId, key, core, admin: { userId: core.trust.localAdminId, username: 'admin', role: 'admin' }, refusals, admit }
}

export const DOC_PREFIXES = ['user/', 'dataset/', 'model/', 'report/', 'mesh/']

/** Every replicated document key with its heads (sorted), in key order. */
export async function headsOf (node: TrustNode): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  for (const prefix of DOC_PREFIXES) {
    for await (const [key, meta] of node.core.docs.scan(prefix)) {
      if (meta.local === true) continue
      out[key] = [...meta.heads].sort()
    }
  }
  return out
}

/** Whole saves (bytes plus signatures) of `keys`, or of every replicated document. */
export async function saves (node: TrustNode, keys?: string[]): Promise<RemoteDoc[]> {
  const list = keys ?? Object.keys(await headsOf(node))
  const saved = await node.core.docs.savedMany(list)
  return list.map((key, i) => {
    const s = saved[i]
    if (s === undefined) throw new Error(`${node.name} has no ${key}`)
    return { key, bytes: s.bytes, sigs: s.sigs }
  })
}

/** Sends whole saves of `keys` (default: every replicated document) from one node to another and waits for parked re-judging. */
export async function sync (from: TrustNode, to: TrustNode, keys?: string[]): Promise<AdmitResult> {
  const result = await to.admit(await saves(from, keys))
  await to.core.docs.flush()
  return result
}

/** One signed change, ready to send on its own. */
export interface SignedChange { key: string, hash: string, deps: string[], message: string | null, bytes: Uint8Array, sig: Uint8Array | undefined }

export function item (c: SignedChange): RemoteDoc {
  return { key: c.key, bytes: c.bytes, sigs: c.sig === undefined ? new Uint8Array(0) : packSigs([[c.hash, c.sig]]) }
}

/** Several changes of one document as one item (bytes concatenated in the order given). */
export function itemOf (changes: SignedChange[]): RemoteDoc {
  const key = changes[0]?.key as string
  const bytes = new Uint8Array(changes.reduce((n, c) => n + c.bytes.length, 0))
  let at = 0
  for (const c of changes) { bytes.set(c.bytes, at); at += c.bytes.length }
  return { key, bytes, sigs: packSigs(changes.filter(c => c.sig !== undefined).map(c => [c.hash, c.sig as Uint8Array])) }
}

/** A node's changes of one document, each with its signature, in causal order. */
export async function changesOf (node: TrustNode, key: string): Promise<SignedChange[]> {
  const [s] = await node.core.docs.savedMany([key])
  if (s === undefined) throw new Error(`${node.name} has no ${key}`)
  const sigs = unpackSigs(s.sigs)
  const doc = A.load(s.bytes)
  try {
    return A.getAllChanges(doc).map(bytes => {
      const info = A.decodeChange(bytes)
      const hash = info.hash as string
      return { key, hash, deps: info.deps, message: info.message, bytes, sig: sigFor(sigs, hash) }
    })
  } finally {
    A.free(doc)
  }
}

/** The document as a node holds it now, as a free-standing Automerge document (for forging changes on top). */
export async function docOf (node: TrustNode, key: string): Promise<A.Doc<any>> {
  const [s] = await node.core.docs.savedMany([key])
  if (s === undefined) throw new Error(`${node.name} has no ${key}`)
  return A.load(s.bytes, { actor: randomBytes(16).toString('hex') })
}

/** The claims a node would record on a change `author` makes there now. */
export async function claimsOf (node: TrustNode, author: string): Promise<Claims> {
  return JSON.parse(await node.core.trust.claims(author)) as Claims
}

/**
 * A change made outside any store's checks: `fn` applied to `base` (or to a
 * new document), recorded with `message` (claims, or any string, or none)
 * and signed by `signer` (a node's identity key) unless `sign` is false.
 * What a faulty or hostile node could send.
 */
export function forge (options: {
  key: string
  base?: A.Doc<any>
  message: Claims | string | undefined
  signer?: PrivateKey
  fn: (doc: any) => void
  time?: number
}): { change: SignedChange, doc: A.Doc<any> } {
  const base = options.base ?? A.init<any>({ actor: randomBytes(16).toString('hex') })
  const message = typeof options.message === 'object' ? encodeClaims(options.message) : options.message
  const opts: { time: number, message?: string } = { time: Math.floor((options.time ?? Date.now()) / 1000) }
  if (message !== undefined) opts.message = message
  const doc = A.change(A.clone(base, { actor: randomBytes(16).toString('hex') }), opts, options.fn)
  const bytes = A.getLastLocalChange(doc)
  if (bytes === undefined) throw new Error('forge: no change made')
  const info = A.decodeChange(bytes)
  const hash = info.hash as string
  const sig = options.signer === undefined ? undefined : new ChangeSigner(options.signer).sign(hash)
  return { change: { key: options.key, hash, deps: info.deps, message: info.message, bytes, sig }, doc }
}
