import { normaliseUsername } from './records/user.ts'

export interface UserClaim {
  id: string
  username: string
  createdAt: string
  deleted: boolean
  /** This node's own bootstrap admin: no account from elsewhere takes its name here. */
  local?: boolean
  /** When this node first saw the account (a local counter, kept on disk by the caller). */
  seen?: number
}

/**
 * Two partitions may each create the same username. After they merge, both
 * accounts exist and the later is flagged until an admin renames one. Which
 * keeps the name for login is decided by nothing a peer controls: a site
 * never gives a name it already resolves to another account. Its own
 * bootstrap admin comes first, then accounts in the order this node first
 * saw them (creation time, then id, only among accounts first seen
 * together). A forged creation time in 1970 takes no name a site has.
 */
export class UsernameClaims {
  readonly #claims = new Map<string, UserClaim>()

  set (claim: UserClaim): void {
    const seen = claim.seen ?? this.#claims.get(claim.id)?.seen
    this.#claims.set(claim.id, seen === undefined ? claim : { ...claim, seen })
  }

  /** The id that owns `username` for login, if any live account claims it. */
  owner (username: string): string | undefined {
    return this.#winner(normaliseUsername(username))?.id
  }

  /** True when another live account with an earlier claim holds this user's name. */
  isConflicted (id: string): boolean {
    const claim = this.#claims.get(id)
    if (claim === undefined || claim.deleted) return false
    return this.#winner(normaliseUsername(claim.username))?.id !== id
  }

  /** Every name claimed by more than one live account, with the claimants in precedence order. */
  conflicts (): Array<{ username: string, ids: string[] }> {
    const byName = new Map<string, UserClaim[]>()
    for (const claim of this.#live()) {
      const name = normaliseUsername(claim.username)
      byName.set(name, [...(byName.get(name) ?? []), claim])
    }
    return [...byName].filter(([, c]) => c.length > 1).map(([username, c]) => ({ username, ids: c.sort(precedence).map(x => x.id) }))
  }

  #winner (name: string): UserClaim | undefined {
    let best: UserClaim | undefined
    for (const claim of this.#live()) {
      if (normaliseUsername(claim.username) !== name) continue
      if (best === undefined || precedence(claim, best) < 0) best = claim
    }
    return best
  }

  * #live (): Generator<UserClaim> {
    for (const claim of this.#claims.values()) if (!claim.deleted) yield claim
  }
}

function precedence (a: UserClaim, b: UserClaim): number {
  if ((a.local === true) !== (b.local === true)) return a.local === true ? -1 : 1
  const as = a.seen ?? Infinity
  const bs = b.seen ?? Infinity
  if (as !== bs) return as < bs ? -1 : 1
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
