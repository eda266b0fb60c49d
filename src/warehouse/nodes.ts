import { peerIdFromString } from '@libp2p/peer-id'
import type { DocStore } from '../crdt/doc-store.ts'
import { DwError } from '../errors.ts'
import { copySettingsOf, DEFAULT_COPIES, initRoster, isCopyCount, MAX_COPIES, MIN_COPIES, revokeNode, rosterEntries, setCopies, setNodeRole, standingIn, type CopySettings, type NodeRole, type RosterEntry, type Standing } from '../trust/roster.ts'
import type { TrustGate } from '../trust/gate.ts'
import { requireAdmin, type Principal } from './principal.ts'

/** The mesh roster as admins see and change it: which nodes belong, and what each may write. */
export class Nodes {
  readonly #docs: DocStore
  readonly #trust: TrustGate

  constructor (docs: DocStore, trust: TrustGate) {
    this.#docs = docs
    this.#trust = trust
  }

  /**
   * Founds a new mesh with this node as its first full node (`dw init`, or
   * `dw node found` on a node that has none). With `adopt`, the history
   * already in the store, written before changes were signed (a data
   * directory of the previous version), is attested by this node, so the
   * nodes that join take it.
   */
  async found (name: string, options: { adopt?: boolean } = {}): Promise<{ meshId: string, attested: number }> {
    if (this.#trust.meshId !== undefined) throw new DwError('CONFLICT', `this node already belongs to mesh ${this.#trust.meshId}`)
    const meshId = await this.#trust.found()
    const admin = this.#trust.localAdminId
    const at = new Date().toISOString()
    await this.#docs.create(this.#key(), doc => { initRoster(doc, meshId, this.#trust.self, admin, at, name) }, { author: admin })
    const attested = options.adopt === true ? await this.#docs.attestUnsigned() : 0
    return { meshId, attested }
  }

  get meshId (): string | undefined { return this.#trust.meshId }

  async list (): Promise<RosterEntry[]> {
    const key = this.#trust.rosterKey
    if (key === undefined) return []
    return await this.#docs.read(key, doc => doc === undefined ? [] : rosterEntries(doc))
  }

  /** A node's standing in this node's current roster (not a verdict on any change: for gating connections and display). */
  async standing (peerId: string): Promise<Standing> {
    const key = this.#trust.rosterKey
    if (key === undefined) return 'unknown'
    return await this.#docs.read(key, doc => standingIn(doc, peerId))
  }

  async setRole (who: Principal, peerId: string, role: NodeRole, name?: string): Promise<RosterEntry> {
    requireAdmin(who)
    validPeerId(peerId)
    if (await this.standing(peerId) === 'revoked') throw new DwError('CONFLICT', `node ${peerId} was revoked; a revoked node needs a new identity`)
    await this.#change(who, doc => { setNodeRole(doc, peerId, role, who.userId, new Date().toISOString(), name) })
    return (await this.list()).find(e => e.peerId === peerId) as RosterEntry
  }

  /** Adds a peer to the roster unless it is there already (what `dw peer add` does on a full node). */
  async enrol (who: Principal, peerId: string, role: NodeRole, name?: string): Promise<boolean> {
    if (await this.standing(peerId) !== 'unknown') return false
    await this.setRole(who, peerId, role, name)
    return true
  }

  async revoke (who: Principal, peerId: string): Promise<void> {
    requireAdmin(who)
    validPeerId(peerId)
    if (peerId === this.#trust.self) throw new DwError('INVALID_INPUT', 'a node cannot revoke itself; revoke it from another full node')
    if (await this.standing(peerId) === 'revoked') return
    await this.#change(who, doc => { revokeNode(doc, peerId, who.userId, new Date().toISOString()) })
  }

  /** The mesh-wide copy targets (docs/files.md, "Copies"), with the default that applies when none is set. */
  async copySettings (): Promise<CopySettings & { defaultCopies: number }> {
    const key = this.#trust.rosterKey
    const settings = key === undefined ? { copies: undefined, copiesByTag: {} } : await this.#docs.read(key, doc => copySettingsOf(doc))
    return { ...settings, defaultCopies: DEFAULT_COPIES }
  }

  /**
   * Sets the copy target of every file in the mesh, or with `tag` of the
   * files of records with that tag; `undefined` clears it. Admins, on a full node.
   */
  async setCopies (who: Principal, copies: number | undefined, tag?: string): Promise<CopySettings & { defaultCopies: number }> {
    requireAdmin(who)
    if (copies !== undefined && !isCopyCount(copies)) throw new DwError('INVALID_INPUT', `a copy target is a whole number from ${MIN_COPIES} to ${MAX_COPIES}, not ${JSON.stringify(copies)}`)
    if (tag !== undefined && (tag.length === 0 || tag.length > 64)) throw new DwError('INVALID_INPUT', 'a tag is 1 to 64 characters')
    await this.#change(who, doc => { setCopies(doc, copies, tag) })
    return await this.copySettings()
  }

  #key (): string {
    const key = this.#trust.rosterKey
    if (key === undefined) throw new DwError('CONFLICT', 'this node has not joined a mesh yet: add a peer of the mesh and let it sync')
    return key
  }

  async #change (who: Principal, fn: (doc: any) => void): Promise<void> {
    const key = this.#key()
    const self = await this.standing(this.#trust.self)
    if (self !== 'full') throw new DwError('FORBIDDEN', `this node is ${self === 'unknown' ? 'not in the roster' : `a ${self} node`}: the roster is changed on a full node`)
    await this.#docs.change(key, fn, { author: who.userId })
  }
}

function validPeerId (peerId: string): void {
  try {
    peerIdFromString(peerId)
  } catch {
    throw new DwError('INVALID_INPUT', `not a peer id: ${JSON.stringify(peerId).slice(0, 80)}`)
  }
}
