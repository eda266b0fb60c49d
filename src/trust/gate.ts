import * as A from '@automerge/automerge'
import type { BaseState, ChangeAdmission, ChangeInfo, ChangeStates, JudgeContext, Verdict } from '../crdt/doc-store.ts'
import { touchedMap, touchedPairs } from '../crdt/prepared-states.ts'
import type { Sublevel } from '../db.ts'
import { asMap } from '../crdt/shape.ts'
import { encodeClaims, parseClaims, type Claims } from './claims.ts'
import { judgeChange, type Acting } from './rules.ts'
import { localAdminIdOf, meshIdOf, rosterKey, standingIn, type Standing } from './roster.ts'
import { verifyChange, type ChangeSigner } from './signatures.ts'

interface Account { role: 'admin' | 'member' | undefined, sites: Set<string> }

/** Verdicts repeat for every change made under one state: remember a bounded number of them. */
class Memo<V> {
  readonly #map = new Map<string, V>()
  get (key: string): V | undefined { return this.#map.get(key) }
  set (key: string, value: V): void {
    if (this.#map.size >= 5000) this.#map.clear()
    this.#map.set(key, value)
  }
}

export interface TrustGateOptions {
  self: string
  signer: ChangeSigner
  /** Where the gate keeps which mesh this node belongs to. */
  state: Sublevel<unknown>
  /** Heads of a document this node holds (for the claims on its own changes). */
  headsOf: (key: string) => Promise<string[] | undefined>
}

/**
 * The trust gate: attributes and signs this node's changes, and judges
 * every change (its own and its peers') against the permission rules under
 * the roster and account states the change references. Plugged into the
 * document store, so no change reaches a document without a verdict.
 */
export class TrustGate implements ChangeAdmission {
  readonly self: string
  readonly #signer: ChangeSigner
  readonly #state: Sublevel<unknown>
  readonly #headsOf: TrustGateOptions['headsOf']
  readonly #standings = new Memo<Standing>()
  readonly #accounts = new Memo<Account>()
  #meshId: string | undefined
  /** The founder of this node's mesh: the one node that may attest history from before changes were signed. */
  #founder: string | undefined

  private constructor (options: TrustGateOptions) {
    this.self = options.self
    this.#signer = options.signer
    this.#state = options.state
    this.#headsOf = options.headsOf
  }

  static async open (options: TrustGateOptions): Promise<TrustGate> {
    const gate = new TrustGate(options)
    const mesh = await options.state.get('mesh')
    const founder = await options.state.get('founder')
    if (typeof mesh === 'string') gate.#meshId = mesh
    if (typeof founder === 'string') gate.#founder = founder
    return gate
  }

  /** The mesh this node belongs to; undefined until it founds or joins one. */
  get meshId (): string | undefined { return this.#meshId }

  get rosterKey (): string | undefined {
    return this.#meshId === undefined ? undefined : rosterKey(this.#meshId)
  }

  get localAdminId (): string { return localAdminIdOf(this.self) }

  /** Makes this node the founder of a new mesh (its roster is then created by the caller). */
  async found (): Promise<string> {
    const meshId = meshIdOf(this.self)
    await this.#adopt(meshId, this.self)
    return meshId
  }

  async #adopt (meshId: string, founder: string): Promise<void> {
    await this.#state.put('founder', founder)
    await this.#state.put('mesh', meshId)
    this.#meshId = meshId
    this.#founder = founder
  }


  async claims (author: string): Promise<string> {
    const roster = this.rosterKey
    const r = roster === undefined ? [] : await this.#headsOf(roster) ?? []
    const local = author === this.localAdminId
    const claims: Claims = { v: 1, u: author, n: this.self, r, h: local ? [] : await this.#headsOf(`user/${author}`) ?? [] }
    if (local) claims.l = 1
    return encodeClaims(claims)
  }

  /** The roster, offered first in every sync session: a joining node learns it is in the mesh before the records arrive. */
  firstKeys (): string[] {
    const key = this.rosterKey
    return key === undefined ? [] : [key]
  }

  /** The roster first, then accounts: what other changes reference. */
  referenceRank (key: string): number | undefined {
    return key.startsWith('mesh/') ? 0 : key.startsWith('user/') ? 1 : undefined
  }

  sign (hash: string): Uint8Array {
    return this.#signer.sign(hash)
  }

  async judge (ctx: JudgeContext, change: ChangeInfo, sig: Uint8Array | undefined, origin: 'local' | 'remote'): Promise<Verdict> {
    const claims = parseClaims(change.message)
    if (claims === undefined) {
      // History from before changes were signed enters only as the mesh
      // founder attested it when the mesh was founded on it (docs/trust.md, upgrading).
      if (origin === 'remote' && sig !== undefined && this.#founder !== undefined && verifyChange(this.#founder, change.hash, sig)) return { ok: true }
      return { ok: false, reason: 'the change does not name its author and origin node, and the mesh founder has not attested it', transient: true }
    }
    if (origin === 'remote') {
      // About this copy, not the change: an honest copy may still come.
      if (sig === undefined) return { ok: false, reason: 'the change carries no signature', transient: true }
      if (!verifyChange(claims.n, change.hash, sig)) return { ok: false, reason: `the signature is not node ${claims.n}'s`, transient: true }
    } else if (claims.n !== this.self) {
      return { ok: false, reason: 'a change made here must name this node' }
    }
    const slash = ctx.key.indexOf('/')
    const kind = ctx.key.slice(0, slash)
    const id = ctx.key.slice(slash + 1)

    let standing: Standing
    if (kind === 'mesh') {
      if (this.#meshId === undefined) {
        // Not yet in a mesh: the first genesis a peer brings is the mesh this node joins.
        if (change.deps.length > 0 || meshIdOf(claims.n) !== id) return { ok: false, wait: true, reason: 'this node has not joined a mesh yet' }
      } else if (id !== this.#meshId) {
        return { ok: false, reason: `roster ${id} belongs to another mesh` }
      }
      standing = change.deps.length === 0 ? 'unknown' : standingIn(A.view(docOf(ctx), change.deps), claims.n)
    } else {
      const roster = this.rosterKey
      if (roster === undefined) return { ok: false, wait: true, reason: 'this node has not joined a mesh yet' }
      if (claims.r.length === 0) return { ok: false, reason: 'the change was made outside the mesh roster' }
      const memoKey = `${claims.n} ${[...claims.r].sort().join(',')}`
      const known = this.#standings.get(memoKey) ?? await ctx.at(roster, claims.r, doc => standingIn(doc, claims.n))
      if (known === undefined) {
        if (await ctx.wasRefused(claims.r)) return { ok: false, reason: 'it references a roster state built on a refused change' }
        return { ok: false, wait: true, reason: 'waiting for the roster state the change references' }
      }
      this.#standings.set(memoKey, known)
      standing = known
    }

    const acting = await this.#acting(ctx, claims, standing)
    if (acting === undefined) {
      if (await ctx.wasRefused(claims.h)) return { ok: false, reason: `it references a state of account ${claims.u} built on a refused change` }
      return { ok: false, wait: true, reason: `waiting for the state of account ${claims.u} the change references` }
    }
    const { before, after, touched } = ctx.states?.get(change.hash) ?? statesOf(docOf(ctx), ctx.base, change)
    const reason = judgeChange({ kind, id, before, after, touched: before === undefined ? everything(after) : touched }, acting)
    if (reason !== undefined) return { ok: false, reason }
    if (kind === 'mesh' && this.#meshId === undefined) await this.#adopt(id, claims.n)
    return { ok: true }
  }

  async #acting (ctx: JudgeContext, claims: Claims, standing: Standing): Promise<Acting | undefined> {
    if (claims.l === 1) {
      // A node's bootstrap admin never leaves it: its rights are its node's.
      if (claims.u !== localAdminIdOf(claims.n)) return { node: claims.n, standing, user: claims.u, role: undefined, bound: false, local: true }
      return { node: claims.n, standing, user: claims.u, role: standing === 'full' ? 'admin' : 'member', bound: true, local: true }
    }
    if (claims.h.length === 0) return { node: claims.n, standing, user: claims.u, role: undefined, bound: false, local: false }
    const memoKey = `${claims.u} ${[...claims.h].sort().join(',')}`
    const account = this.#accounts.get(memoKey) ?? await ctx.at(`user/${claims.u}`, claims.h, accountOf)
    if (account === undefined) return undefined
    this.#accounts.set(memoKey, account)
    return { node: claims.n, standing, user: claims.u, role: account.role, bound: standing === 'full' || account.sites.has(claims.n), local: false }
  }
}

function accountOf (doc: any): Account {
  const usable = doc.kind === 'user' && doc.disabled !== true && Object.keys(asMap(doc.deletions)).length === 0
  return {
    role: !usable ? undefined : doc.role === 'admin' ? 'admin' : 'member',
    sites: new Set(Object.keys(asMap(doc.sites)))
  }
}

/** Every field of a document and every key of its maps: what a document's first change touched. */
function everything (doc: any): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const [field, value] of Object.entries(doc as Record<string, unknown>)) {
    const keys = new Set([''])
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) for (const k of Object.keys(value)) keys.add(k)
    out.set(field, keys)
  }
  return out
}

function docOf (ctx: JudgeContext): A.Doc<any> {
  // The store prepares states only for documents no rule reads the history of (not the roster, not accounts).
  if (ctx.doc === undefined) throw new Error(`${ctx.key} came with prepared states where its document is needed`)
  return ctx.doc
}

/** The document before and after `change`, and what it touched (a document's first change: everything, worked out by the caller). */
function statesOf (doc: A.Doc<any>, base: BaseState | undefined, change: ChangeInfo): ChangeStates {
  // The document as it is, when this change is its only head (most changes): a view costs a copy.
  const heads = A.getHeads(doc)
  const only = heads.length === 1 && heads[0] === change.hash
  const after = only ? doc : A.view(doc, [change.hash])
  if (change.deps.length === 0) return { before: undefined, after, touched: new Map() }
  // The only change made on the state the caller had: that state, and the patches that made `after` of it, are at hand.
  if (only && base !== undefined && sameSet(change.deps, base.heads)) return { before: base.doc, after, touched: touchedIn(base.patches) }
  return { before: A.view(doc, change.deps), after, touched: touchedIn(A.diff(doc, change.deps, [change.hash])) }
}

function sameSet (a: string[], b: string[]): boolean {
  return a.length === b.length && a.every(h => b.includes(h))
}

/** The fields (and keys below them) a change touched, from Automerge's patches between its before and after states. */
export function touchedIn (patches: A.Patch[]): Map<string, Set<string>> {
  return touchedMap(touchedPairs(patches))
}
