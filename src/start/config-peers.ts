import type { AuditLog } from '../audit.ts'
import type { Sublevel } from '../db.ts'
import { DwError } from '../errors.ts'
import type { PeerBook } from '../peer/peer-book.ts'
import { parseAnnounceAddress, parsePeerAddress, parsePeerName } from '../peer/peer-address.ts'
import { NodeRoles, type NodeRole } from '../trust/roster.ts'
import type { Nodes } from '../warehouse/nodes.ts'
import type { Principal } from '../warehouse/principal.ts'

/** One entry of config.json `peers`: what `dw peer add MULTIADDR [--name N] [--role R]` would be given. */
export interface ConfigPeer {
  multiaddr: string
  name?: string
  /** On a full node, the role the peer gets in the mesh roster if it is not in it yet (default contributor), as with `dw peer add --role`. */
  role?: NodeRole
}

/** A peer this start should make sure of, checked, with where it was written. */
export interface WantedPeer {
  peerId: string
  addrs: string[]
  name?: string
  role?: NodeRole
  /** `config.json peers[2]` or `DW_PEERS`, for messages and the audit log. */
  source: string
}

/** What a config peer was when this node first added it (sublevel `config-peers`). */
export interface AppliedPeer { addedAt: number, source: string }

const PEER_KEYS = new Set(['multiaddr', 'name', 'role'])

/**
 * config.json `peers` and the `DW_PEERS` environment variable (multiaddrs
 * separated by commas or whitespace), checked and merged: the environment
 * adds to the file. A bad entry stops the start with CONFIG_INVALID naming
 * it; nothing is guessed or repaired. One peer appears at most once in the
 * file (it carries the name and role); `DW_PEERS` may repeat a peer of the
 * file, which adds that address to it.
 */
export function resolveConfigPeers (configured: unknown, env: string | undefined, self: string): WantedPeer[] {
  if (configured !== undefined && !Array.isArray(configured)) throw invalid('config.json "peers" must be a list of {"multiaddr": ..., "name"?: ..., "role"?: ...}')
  const byId = new Map<string, WantedPeer>()
  for (const [i, entry] of ((configured ?? []) as unknown[]).entries()) {
    const source = `config.json peers[${i}]`
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw invalid(`${source} must be an object such as {"multiaddr": "/ip4/10.1.2.3/tcp/4001/p2p/12D3KooW...", "name": "site-b"}`)
    const unknown = Object.keys(entry).filter(k => !PEER_KEYS.has(k))
    if (unknown.length > 0) throw invalid(`${source} has ${unknown.map(k => `"${k}"`).join(', ')}, which is not a peer setting (known: multiaddr, name, role)`)
    const { multiaddr, name, role } = entry as Record<string, unknown>
    if (typeof multiaddr !== 'string') throw invalid(`${source} needs "multiaddr", the peer's address ending in /p2p/<peerId>`)
    const { peerId, addr } = checked(source, () => parsePeerAddress(multiaddr, self))
    const wanted: WantedPeer = { peerId, addrs: [addr], source }
    if (name !== undefined) wanted.name = checked(source, () => parsePeerName(name as string))
    if (role !== undefined) {
      if (!NodeRoles.includes(role as NodeRole)) throw invalid(`${source} "role" must be one of ${NodeRoles.join(', ')}, got ${JSON.stringify(role)}`)
      wanted.role = role as NodeRole
    }
    const earlier = byId.get(peerId)
    if (earlier !== undefined) throw invalid(`${source} names peer ${peerId} again (${earlier.source} already does); list each peer once`)
    byId.set(peerId, wanted)
  }
  const fromEnv = (env ?? '').split(/[\s,]+/).filter(s => s !== '')
  for (const [i, text] of fromEnv.entries()) {
    const source = 'DW_PEERS'
    const { peerId, addr } = checked(`${source} entry ${i + 1}`, () => parsePeerAddress(text, self))
    const earlier = byId.get(peerId)
    if (earlier === undefined) byId.set(peerId, { peerId, addrs: [addr], source })
    else if (!earlier.addrs.includes(addr)) earlier.addrs.push(addr)
  }
  return [...byId.values()]
}

/** config.json `announce` and `dw start --announce`, checked, without duplicates. */
export function resolveAnnounce (configured: unknown, extra: string[], self: string): string[] {
  if (configured !== undefined && !Array.isArray(configured)) throw invalid('config.json "announce" must be a list of multiaddrs such as ["/ip4/203.0.113.7/tcp/4001"]')
  const out: string[] = []
  const all: Array<[string, unknown]> = [
    ...((configured ?? []) as unknown[]).map((a, i): [string, unknown] => [`config.json announce[${i}]`, a]),
    ...extra.map((a): [string, unknown] => ['--announce', a])
  ]
  for (const [source, addr] of all) {
    const clean = checked(source, () => parseAnnounceAddress(addr as string, self))
    if (!out.includes(clean)) out.push(clean)
  }
  return out
}

export interface ConfigPeerDeps {
  book: PeerBook
  nodes: Nodes
  audit: AuditLog
  /** Config peers this node has added before, so one an admin removed since is not added back. */
  applied: Sublevel<AppliedPeer>
  /** The local admin account: config.json is its word, as `dw peer add` through the node token is. */
  admin: Principal
  self: string
  /** A peer was added: dial it now (`SyncService.peerAdded`). */
  added: (peerId: string) => void
  warn: (message: string) => void
}

/**
 * Adds the peers config.json and `DW_PEERS` name, as `dw peer add` would,
 * once: a peer already in the peer book is left as an admin last set it
 * (addresses, name, link profile), and one this step added before that an
 * admin has removed since stays removed. On a full node a newly added peer
 * also joins the mesh roster with its `role` (default contributor) unless
 * the roster already has it, exactly as `POST /peers` does; elsewhere a
 * `role` cannot be given, so it is reported and left out.
 */
export async function addConfigPeers (deps: ConfigPeerDeps, wanted: WantedPeer[]): Promise<void> {
  if (wanted.length === 0) return
  const full = await deps.nodes.standing(deps.self) === 'full'
  for (const peer of wanted) {
    const { peerId, source } = peer
    const standing = await deps.nodes.standing(peerId)
    if (standing === 'revoked') {
      deps.warn(`${source}: peer ${peerId} was revoked from the mesh; not added (remove it from ${source.startsWith('DW_PEERS') ? 'DW_PEERS' : 'config.json'})`)
      continue
    }
    const present = deps.book.get(peerId)
    const before = await deps.applied.get(peerId)
    if (present !== undefined) {
      const missing = peer.addrs.filter(a => !present.addrs.includes(a))
      if (missing.length > 0) deps.warn(`${source}: peer ${peerId} is already in the peer book without ${missing.join(', ')}; left as it is (add the address with "dw peer add" if it is new)`)
      if (before === undefined) await deps.applied.put(peerId, { addedAt: Date.now(), source })
      continue
    }
    if (before !== undefined) {
      deps.warn(`${source}: peer ${peerId} was removed from the peer book after this node added it from config; not added again (add it with "dw peer add", or remove it from ${source.startsWith('DW_PEERS') ? 'DW_PEERS' : 'config.json'})`)
      continue
    }
    let entry = await deps.book.add(peer.addrs[0] as string, peer.name)
    for (const addr of peer.addrs.slice(1)) entry = await deps.book.add(addr)
    await deps.applied.put(peerId, { addedAt: entry.addedAt, source })
    await deps.audit.append({ type: 'peer.add', actor: deps.admin.userId, peer: peerId, details: { addrs: entry.addrs, name: entry.name, from: source } })
    if (full) {
      const role = peer.role ?? 'contributor'
      if (await deps.nodes.enrol(deps.admin, peerId, role, peer.name)) {
        await deps.audit.append({ type: 'node.role', actor: deps.admin.userId, peer: peerId, details: { role, from: source } })
      }
    } else if (peer.role !== undefined) {
      deps.warn(`${source}: "role" ignored for peer ${peerId}: this node is not a full node of a mesh, so it cannot give a peer a role; give it on a full node`)
    }
    deps.added(peerId)
  }
}

function checked<T> (source: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    throw invalid(`${source}: ${(err as Error).message}`, err)
  }
}

function invalid (message: string, cause?: unknown): DwError {
  return new DwError('CONFIG_INVALID', message, { cause })
}
