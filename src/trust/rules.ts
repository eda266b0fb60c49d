import { asList, asMap } from '../crdt/shape.ts'
import { isCopyCount, MAX_COPIES, MIN_COPIES, meshIdOf, nodeDocIdOf, NodeRoles, type Standing } from './roster.ts'
import { judgeFileRefs } from './file-refs.ts'

/**
 * The permission rules: one function that says whether a change may stand.
 * Every change passes through it, whether an HTTP request made it here or a
 * peer sent it (CouchDB's validate_doc_update, Matrix's auth rules). It
 * reads only the change, the document as the change found it and the
 * states the change references, so every honest node gives the same verdict.
 */

/** One change, as the rules see it. */
export interface ChangeFacts {
  kind: string
  id: string
  /** The document as the change found it (at its dependencies); undefined for a document's first change. */
  before: any
  /** The document with the change applied to that state. */
  after: any
  /** Top-level fields the change touched, each with the keys below it that it touched ('' for the field itself). */
  touched: Map<string, Set<string>>
}

/** Who made the change, as the states it references say. */
export interface Acting {
  node: string
  /** The origin node's standing in the roster state the change references. */
  standing: Standing
  user: string
  /** The author's role; undefined when the account is unknown, disabled or deleted in the referenced state. */
  role: 'admin' | 'member' | undefined
  /** The origin node may act for this user: a full node, the node's own admin, or a site the account lists. */
  bound: boolean
  /** The author is the origin node's own bootstrap admin. */
  local: boolean
}

const IMMUTABLE = ['kind', 'id', 'createdAt', 'createdBy']
/** What users may change on their own account; everything else about an account is an admin's. */
const SELF_SERVICE = new Set(['passwordHash', 'email', 'displayName', 'preferences', 'updatedAt', 'updatedBy'])
const USER_ROLES = ['admin', 'member']

/** The refusal reason, or undefined when the change may stand. */
export function judgeChange (c: ChangeFacts, who: Acting): string | undefined {
  if (c.kind === 'mesh') return judgeRoster(c, who)
  if (c.kind === 'node') return judgeNodeDoc(c, who)
  if (who.standing === 'unknown') return `node ${who.node} is not in the mesh roster`
  if (who.standing === 'revoked') return `node ${who.node} was revoked`
  if (who.standing === 'read-only') return `node ${who.node} is read-only`
  if (who.role === undefined) return `account ${who.user} is unknown, disabled or deleted`
  if (!who.bound) return `node ${who.node} may not act for account ${who.user}: an admin can add this site to the account`
  const stamps = judgeStamps(c, who)
  if (stamps !== undefined) return stamps
  return (c.kind === 'user' ? judgeAccount(c, who) : judgeContent(c, who)) ?? judgeFileRefs(c)
}

function touched (c: ChangeFacts, field: string): Set<string> | undefined {
  return c.touched.get(field)
}

/** Who made and changed a record is the signed author, and nobody rewrites how a record began. */
function judgeStamps (c: ChangeFacts, who: Acting): string | undefined {
  const created = c.before === undefined || c.before.kind === undefined
  if (created) {
    if (c.after.kind !== c.kind || c.after.id !== c.id) return `a ${c.kind} must be created with its own kind and id`
    if (c.after.createdBy !== who.user) return 'createdBy must be the author of the change'
  } else {
    for (const field of IMMUTABLE) if (touched(c, field) !== undefined) return `${field} cannot change`
  }
  if (touched(c, 'updatedBy') !== undefined && c.after.updatedBy !== who.user) return 'updatedBy must be the author of the change'
  return undefined
}

/** Entries added to a keyed map must be stamped with the author; entries once written never change. */
function judgeAppendOnly (c: ChangeFacts, field: string, stamp: string, who: Acting): string | undefined {
  const keys = touched(c, field)
  if (keys === undefined) return undefined
  const before = c.before === undefined ? undefined : c.before[field]
  const hadMap = before !== null && typeof before === 'object' && !Array.isArray(before)
  for (const k of keys) {
    if (k === '') {
      if (hadMap) return `${field} cannot be replaced`
      continue
    }
    if (hadMap && before[k] !== undefined) return `${field} entries cannot change once written`
    const entry = asMap(asMap(c.after[field])[k])
    if (entry[stamp] !== who.user) return `${field} entries must name the author of the change as ${stamp}`
  }
  return undefined
}

function judgeContent (c: ChangeFacts, who: Acting): string | undefined {
  if (who.standing !== 'full' && who.standing !== 'contributor') return `node ${who.node} may not write records`
  const admin = who.role === 'admin'
  if (c.before === undefined || c.before.kind === undefined) {
    if (c.after.owner !== who.user && !admin) return 'a record must be owned by its author'
  } else {
    if (c.before.owner !== who.user && !admin) return `only the owner of this ${c.kind} or an admin can change it`
    if (touched(c, 'owner') !== undefined && !admin) return 'only an admin can change the owner'
  }
  const deletions = touched(c, 'deletions')
  if (deletions !== undefined) {
    const before = asMap(c.before?.deletions)
    for (const k of deletions) {
      if (k === '' || before[k] !== undefined) continue
      const entry = asMap(asMap(c.after.deletions)[k])
      if (entry.by !== who.user) return 'a deletion must name the author of the change'
    }
  }
  if (touched(c, 'copies') !== undefined && c.after.copies !== undefined && c.after.copies !== null && !isCopyCount(c.after.copies)) {
    return `copies must be a whole number from ${MIN_COPIES} to ${MAX_COPIES}`
  }
  return judgeAppendOnly(c, 'versions', 'author', who) ?? judgeAppendOnly(c, 'training', 'by', who) ??
    (c.kind === 'report' ? judgeReportFiles(c) : undefined)
}

/**
 * A report's files, once it exists, are only appended to (`POST
 * /reports/{id}/files`): an attached file is never changed, reordered or
 * removed, and a name the report has is not used again, so a file stays
 * downloadable by the name it was shown under. Read from the diff's list
 * positions: a change may touch only positions at or after the end of the
 * list as it found it. Who may append is the owner-or-admin check above.
 * Two sites appending at once are both kept (Automerge keeps concurrent
 * inserts); each was judged against the list it saw, so a name attached on
 * both sides at once appears twice, and downloads serve the first in list
 * order, the same on every node.
 */
function judgeReportFiles (c: ChangeFacts): string | undefined {
  const keys = touched(c, 'files')
  if (keys === undefined || c.before === undefined || c.before.kind === undefined) return undefined
  // A list a peer never made a list (an older or faulty writer) may be replaced by one.
  if (!Array.isArray(c.before.files)) return undefined
  const before = c.before.files as unknown[]
  for (const k of keys) {
    if (k === '' || Number(k) < before.length) return 'a report\'s files can only be appended to: attached files cannot change or go'
  }
  const names = new Set(before.map(f => asMap(f).name))
  for (const f of asList(c.after.files).slice(before.length)) {
    const name = asMap(f).name
    if (typeof name !== 'string') continue
    if (names.has(name)) return `the report already has a file named ${JSON.stringify(String(name).slice(0, 100))}`
    names.add(name)
  }
  return undefined
}

function judgeAccount (c: ChangeFacts, who: Acting): string | undefined {
  if (who.standing !== 'full') return `node ${who.node} is a ${who.standing} node: only full nodes change accounts`
  const admin = who.role === 'admin'
  const self = c.id === who.user
  if (c.before === undefined || c.before.kind === undefined) {
    if (!admin) return 'only an admin can create accounts'
  } else if (!admin) {
    if (!self) return 'only an admin can change another account'
    for (const field of c.touched.keys()) {
      if (!SELF_SERVICE.has(field)) return `only an admin can change ${field}`
    }
  }
  if (touched(c, 'role') !== undefined && !USER_ROLES.includes(c.after.role)) return 'role must be admin or member'
  return undefined
}

/** Roster changes: its founder's genesis, then full nodes' admins only; a revocation is permanent. */
function judgeRoster (c: ChangeFacts, who: Acting): string | undefined {
  if (c.before === undefined) {
    if (!who.local || c.after.founder !== who.node || meshIdOf(who.node) !== c.id || c.after.id !== c.id || c.after.kind !== 'mesh') {
      return 'a mesh roster can only be founded by the node its id names'
    }
    const nodes = Object.keys(asMap(c.after.nodes))
    if (nodes.length !== 1 || nodes[0] !== who.node || asMap(asMap(c.after.nodes)[who.node]).role !== 'full' || Object.keys(asMap(c.after.revoked)).length > 0) {
      return 'a roster genesis names only its founder, as a full node'
    }
    return judgeSettings(c)
  }
  if (who.standing !== 'full') return `node ${who.node} is not a full node: only full nodes change the roster`
  if (who.role !== 'admin' || !who.bound) return 'only an admin can change the roster'
  for (const field of ['kind', 'id', 'founder']) if (touched(c, field) !== undefined) return `${field} cannot change`
  const revoked = touched(c, 'revoked')
  if (revoked !== undefined) {
    const before = asMap(c.before.revoked)
    for (const k of revoked) {
      if (k === '' || before[k] !== undefined) return 'a revocation is permanent'
    }
  }
  const nodes = touched(c, 'nodes')
  if (nodes !== undefined) {
    for (const k of nodes) {
      if (k === '') return 'the node list cannot be replaced'
      const entry = asMap(c.after.nodes)[k]
      if (entry !== undefined && !(NodeRoles as readonly string[]).includes(asMap(entry).role as string)) return 'a node role must be full, contributor or read-only'
    }
  }
  return judgeSettings(c)
}

/** The mesh-wide settings in the roster: copy targets are whole numbers 1..10, whoever sets them. */
function judgeSettings (c: ChangeFacts): string | undefined {
  if (touched(c, 'settings') === undefined) return undefined
  const settings = c.after.settings
  if (settings === undefined) return undefined
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) return 'settings must be a map'
  const bad = `a copy target must be a whole number from ${MIN_COPIES} to ${MAX_COPIES}`
  if (settings.copies !== undefined && !isCopyCount(settings.copies)) return bad
  const byTag = settings.copiesByTag
  if (byTag === undefined) return undefined
  if (byTag === null || typeof byTag !== 'object' || Array.isArray(byTag)) return 'settings.copiesByTag must be a map'
  for (const [tag, n] of Object.entries(byTag as Record<string, unknown>)) {
    if (tag.length === 0 || tag.length > 64) return 'a tag is 1 to 64 characters'
    if (!isCopyCount(n)) return bad
  }
  return undefined
}

const SHA256 = /^[0-9a-f]{64}$/

/**
 * A node's own document (`node/<id>`, the files it holds): written only by
 * the node it names, as its own bootstrap admin, while it is a member of
 * the roster the change references (read-only nodes too: they hold copies
 * as well). Nobody else may write it, not even a full node's admin: what a
 * node says it holds is its own word, attributable to it.
 */
function judgeNodeDoc (c: ChangeFacts, who: Acting): string | undefined {
  if (who.standing === 'unknown') return `node ${who.node} is not in the mesh roster`
  if (who.standing === 'revoked') return `node ${who.node} was revoked`
  if (!who.local || !who.bound) return 'a node document is written only by its own node'
  if (c.id !== nodeDocIdOf(who.node)) return 'a node writes only its own node document'
  const created = c.before === undefined || c.before.kind === undefined
  if (created) {
    if (c.after.kind !== 'node' || c.after.id !== c.id || c.after.peerId !== who.node) return 'a node document must be created with its own kind, id and peer id'
  } else {
    for (const field of ['kind', 'id', 'peerId']) if (touched(c, field) !== undefined) return `${field} cannot change`
  }
  const holdings = touched(c, 'holdings')
  if (holdings !== undefined) {
    const after = c.after.holdings
    if (after === null || typeof after !== 'object' || Array.isArray(after)) return 'holdings must be a map'
    const had = c.before?.holdings
    for (const k of holdings) {
      if (k === '') {
        if (had !== null && typeof had === 'object' && !Array.isArray(had)) return 'holdings cannot be replaced'
        continue
      }
      if (!SHA256.test(k)) return 'holdings are keyed by sha256'
      const size = after[k]
      if (size !== undefined && !((typeof size === 'number' && Number.isSafeInteger(size) && size >= 0) || (typeof size === 'bigint' && size >= 0n))) return 'a holding is a size in bytes'
    }
  }
  return undefined
}
