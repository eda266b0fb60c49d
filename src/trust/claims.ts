/**
 * What every replicated change says about itself, recorded as the Automerge
 * change's message (so the change hash, and with it the origin node's
 * signature, covers it): who made it, on which node, and the state of the
 * mesh roster and of the author's account it was made under. A verdict on
 * the change may read only these referenced states, never the receiver's
 * own, so every honest node reaches the same verdict (see docs/trust.md).
 */
export interface Claims {
  v: 1
  /** Author: a user id. */
  u: string
  /** Origin node: the peer id whose key signs the change. */
  n: string
  /** Heads of the mesh roster the change was made under. */
  r: string[]
  /** Heads of the author's account document the change was made under (empty for a node's own local admin). */
  h: string[]
  /** Set when the author is the origin node's own bootstrap admin, whose account never leaves that node. */
  l?: 1
}

const HEAD = /^[0-9a-f]{64}$/
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const PEER = /^[1-9A-HJ-NP-Za-km-z]{40,60}$/
const MAX_HEADS = 64

export function encodeClaims (claims: Claims): string {
  return JSON.stringify(claims)
}

function heads (v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= MAX_HEADS && v.every(h => typeof h === 'string' && HEAD.test(h))
}

/** The claims in a change message, or undefined when it has none that parse. */
export function parseClaims (message: string | null | undefined): Claims | undefined {
  if (typeof message !== 'string' || message.length > 10_000) return undefined
  let m: any
  try { m = JSON.parse(message) } catch { return undefined }
  if (m === null || typeof m !== 'object' || m.v !== 1) return undefined
  if (typeof m.u !== 'string' || !ID.test(m.u)) return undefined
  if (typeof m.n !== 'string' || !PEER.test(m.n)) return undefined
  if (!heads(m.r) || !heads(m.h)) return undefined
  if (m.l !== undefined && m.l !== 1) return undefined
  const claims: Claims = { v: 1, u: m.u, n: m.n, r: m.r, h: m.h }
  if (m.l === 1) claims.l = 1
  return claims
}
