import { normaliseUsername } from './records/user.ts'

export interface UserClaim { id: string, username: string, createdAt: string, deleted: boolean }

/**
 * Two partitions may each create the same username. After they merge, both
 * accounts exist; the earlier-created (then lower id) keeps the name for
 * login and the other is flagged until an admin renames one. Every node
 * computes the same answer from the same documents, so nobody can ever be
 * logged into someone else's account by name.
 */
export class UsernameClaims {
  readonly #claims = new Map<string, UserClaim>()

  set (claim: UserClaim): void {
    this.#claims.set(claim.id, claim)
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
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
