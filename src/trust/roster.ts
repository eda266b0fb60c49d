import { createHash } from 'node:crypto'
import * as A from '@automerge/automerge'
import { asMap, asText } from '../crdt/shape.ts'
import { isCopyCount } from '../crdt/records/common.ts'
export { DEFAULT_COPIES, isCopyCount, MAX_COPIES, MIN_COPIES } from '../crdt/records/common.ts'

/**
 * The mesh roster: one replicated document, `mesh/<meshId>`, naming every
 * node of the mesh and what it may write. Only full nodes change it, and
 * its first change must come from the founder that the mesh id is derived
 * from, so nobody can found a rival roster under the same id.
 */
export const NodeRoles = ['full', 'contributor', 'read-only'] as const
export type NodeRole = typeof NodeRoles[number]
/** A node's standing under one roster state. */
export type Standing = NodeRole | 'revoked' | 'unknown'

export interface RosterEntry {
  peerId: string
  role: NodeRole | 'revoked'
  name: string
  addedBy: string
  addedAt: string
  founder: boolean
}

/** A UUID-shaped id (version 8) derived from `text`: the same on every node. */
function derivedId (text: string): string {
  const h = createHash('sha256').update(text).digest()
  h[6] = ((h[6] as number) & 0x0f) | 0x80
  h[8] = ((h[8] as number) & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`
}

/** The id of the mesh that `founder` founds: a roster genesis by anyone else fails this check. */
export function meshIdOf (founder: string): string {
  return derivedId(`dw-mesh roster\n${founder}`)
}

/**
 * The user id of a node's bootstrap admin. Derived from the peer id, so a
 * node claiming to act as its own local admin cannot name someone else's
 * account instead.
 */
export function localAdminIdOf (peerId: string): string {
  return derivedId(`dw-mesh local admin\n${peerId}`)
}

export function rosterKey (meshId: string): string {
  return `mesh/${meshId}`
}

/**
 * The id of a node's own replicated document (`node/<id>`: which files it
 * holds). Derived from the peer id, so each node has exactly one and no
 * node can write under another's.
 */
export function nodeDocIdOf (peerId: string): string {
  return derivedId(`dw-mesh node\n${peerId}`)
}

export function nodeDocKey (peerId: string): string {
  return `node/${nodeDocIdOf(peerId)}`
}

/** The mesh-wide file settings the roster carries (`settings` in the roster document). */
export interface CopySettings {
  /** Copies of every file; undefined: DEFAULT_COPIES. */
  copies: number | undefined
  /** Copies of the files of records with a tag. */
  copiesByTag: Record<string, number>
}

/** The copy settings in a roster state; values that are not 1..10 are ignored. */
export function copySettingsOf (roster: any): CopySettings {
  const settings = asMap(roster?.settings)
  const byTag: Record<string, number> = {}
  for (const [tag, n] of Object.entries(asMap(settings.copiesByTag))) if (isCopyCount(n)) byTag[tag] = n
  return { copies: isCopyCount(settings.copies) ? settings.copies : undefined, copiesByTag: byTag }
}

/** Sets (or with `undefined` clears) the mesh-wide copy target, or a tag's. */
export function setCopies (doc: any, copies: number | undefined, tag?: string): void {
  if (doc.settings === null || typeof doc.settings !== 'object' || Array.isArray(doc.settings)) doc.settings = {}
  if (tag === undefined) {
    if (copies === undefined) delete doc.settings.copies
    else doc.settings.copies = copies
    return
  }
  const byTag = doc.settings.copiesByTag
  if (byTag === null || typeof byTag !== 'object' || Array.isArray(byTag)) doc.settings.copiesByTag = {}
  if (copies === undefined) delete doc.settings.copiesByTag[tag]
  else doc.settings.copiesByTag[tag] = copies
}

const rank: Record<Standing, number> = { revoked: 0, unknown: 0, 'read-only': 1, contributor: 2, full: 3 }

function isRole (v: unknown): v is NodeRole {
  return typeof v === 'string' && (NodeRoles as readonly string[]).includes(v)
}

/**
 * A node's standing in a roster state. Revocation is permanent (a revoked
 * id must get a new identity); of concurrent role assignments the least
 * privileged counts, so a node cannot outrace its own demotion.
 */
export function standingIn (roster: any, peerId: string): Standing {
  if (roster === undefined || roster === null) return 'unknown'
  if (asMap(roster.revoked)[peerId] !== undefined) return 'revoked'
  const nodes = asMap(roster.nodes)
  if (nodes[peerId] === undefined) return 'unknown'
  const values = Object.values(A.getConflicts(roster.nodes, peerId) ?? { only: nodes[peerId] })
  let least: Standing | undefined
  for (const v of values) {
    const role = asMap(v).role
    const s: Standing = isRole(role) ? role : 'unknown'
    if (least === undefined || rank[s] < rank[least]) least = s
  }
  return least ?? 'unknown'
}

export function initRoster (doc: any, meshId: string, founder: string, by: string, at: string, name: string): void {
  doc.kind = 'mesh'
  doc.id = meshId
  doc.founder = founder
  doc.nodes = {}
  doc.nodes[founder] = { role: 'full', name, addedBy: by, addedAt: at }
  doc.revoked = {}
  doc.settings = { copiesByTag: {} }
}

/** Writes a fresh entry (a concurrent write conflicts whole, and the least privileged wins). */
export function setNodeRole (doc: any, peerId: string, role: NodeRole, by: string, at: string, name?: string): void {
  const prior = asMap(asMap(doc.nodes)[peerId])
  doc.nodes[peerId] = { role, name: name ?? asText(prior.name), addedBy: by, addedAt: at }
}

export function revokeNode (doc: any, peerId: string, by: string, at: string): void {
  doc.revoked[peerId] = { at, by }
}

export function rosterEntries (roster: any): RosterEntry[] {
  const out: RosterEntry[] = []
  const ids = new Set([...Object.keys(asMap(roster?.nodes)), ...Object.keys(asMap(roster?.revoked))])
  for (const peerId of [...ids].sort()) {
    const entry = asMap(asMap(roster.nodes)[peerId])
    const standing = standingIn(roster, peerId)
    out.push({
      peerId,
      role: standing === 'unknown' ? 'read-only' : standing,
      name: asText(entry.name),
      addedBy: asText(entry.addedBy),
      addedAt: asText(entry.addedAt),
      founder: roster.founder === peerId
    })
  }
  return out
}
