import { createHash } from 'node:crypto'
import { DEFAULT_COPIES, isCopyCount } from '../crdt/records/common.ts'

/**
 * How many sites must hold each file, and which sites should fetch one that
 * has too few copies (docs/files.md, "Copies"). Pure functions: every node
 * computes the same answers from the same replicated facts.
 */

/** The mesh-wide settings as the roster carries them. */
export interface CopyTargets {
  copies: number | undefined
  copiesByTag: Record<string, number>
}

/**
 * A record's copy target: the highest of the mesh-wide target (default 2),
 * the targets of its tags, and its own `copies`. Highest wins, so a tag or
 * record can ask for more copies than the mesh keeps, never for fewer.
 */
export function copyTarget (mesh: CopyTargets, record: { tags?: readonly string[], copies?: unknown }): number {
  let target = isCopyCount(mesh.copies) ? mesh.copies : DEFAULT_COPIES
  for (const tag of record.tags ?? []) {
    const n = mesh.copiesByTag[tag]
    if (isCopyCount(n) && n > target) target = n
  }
  if (isCopyCount(record.copies) && record.copies > target) target = record.copies
  return target
}

/**
 * Rendezvous (highest random weight) ranking of `peers` for one file: each
 * peer's score is sha256(file hash, peer id), highest first. Every node
 * ranks alike without talking to anyone, a file's ranking changes only for
 * the peers that join or leave, and files spread evenly over the sites.
 */
export function rankFor (sha256: string, peers: Iterable<string>): string[] {
  const scored = [...new Set(peers)].map(peer => ({ peer, score: createHash('sha256').update(`${sha256}\n${peer}`).digest('hex') }))
  scored.sort((a, b) => a.score < b.score ? 1 : a.score > b.score ? -1 : a.peer < b.peer ? -1 : 1)
  return scored.map(s => s.peer)
}

export interface CopyFacts {
  sha256: string
  target: number
  /** Non-revoked roster members (peer ids). */
  members: readonly string[]
  /** Members that hold the file (as their node documents say, or as this node knows of itself). */
  holders: ReadonlySet<string>
  self: string
  /** When this node first saw the file below its target (ms since epoch). */
  belowSince: number
  now: number
  graceMs: number
}

/**
 * Whether this node should fetch the file now: it lacks it, the file is
 * below target, and this node is among the (target − copies) top-ranked
 * members that lack it, or the file has stayed below target for the grace
 * period (a chosen site may be offline or full).
 */
export function shouldFetch (f: CopyFacts): boolean {
  if (f.holders.has(f.self) || f.holders.size >= f.target) return false
  const lacking = f.members.filter(p => !f.holders.has(p))
  if (!lacking.includes(f.self)) return false
  const chosen = rankFor(f.sha256, lacking).slice(0, f.target - f.holders.size)
  return chosen.includes(f.self) || f.now - f.belowSince >= f.graceMs
}
