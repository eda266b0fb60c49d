import type { BatchOp, DocIndex } from '../crdt/doc-store.ts'
import type { Sublevel } from '../db.ts'

/**
 * When this node first saw each account: the order of the username rule
 * (src/crdt/username-claims.ts), kept across restarts.
 *
 * The number goes into the same atomic batch as the account's first commit
 * here (a DocStore index). It was written after the commit, fire-and-forget,
 * so a node killed in between restarted with the account committed but not
 * numbered, and numbered it again by creation time, a field its creator
 * chose: a name this node had resolved to one account could pass to another.
 */
export class AccountsSeen {
  readonly #sub: Sublevel<number>
  readonly #numbers = new Map<string, number>()
  #count = 0

  private constructor (sub: Sublevel<number>) {
    this.#sub = sub
  }

  static async open (sub: Sublevel<number>): Promise<AccountsSeen> {
    const seen = new AccountsSeen(sub)
    for await (const [id, n] of sub.iterator()) {
      seen.#numbers.set(id, n)
      seen.#count = Math.max(seen.#count, n)
    }
    return seen
  }

  /** The DocStore index hook: numbers an account in the batch that first stores it here. */
  readonly index: DocIndex = (key, before) => {
    if (before !== undefined || !key.startsWith('user/')) return []
    const id = key.slice('user/'.length)
    // A batch that failed may have taken a number already: the same one is written again.
    const n = this.#numbers.get(id) ?? ++this.#count
    this.#numbers.set(id, n)
    const op: BatchOp = { type: 'put', sublevel: this.#sub, key: id, value: n }
    return [op]
  }

  /** The account's number, if this node has stored it. */
  numberOf (id: string): number | undefined {
    return this.#numbers.get(id)
  }

  /** Numbers, in the order given, accounts stored before numbers were kept. */
  async numberUnseen (ids: string[]): Promise<void> {
    const puts: Array<{ type: 'put', key: string, value: number }> = []
    for (const id of ids) {
      if (this.#numbers.has(id)) continue
      const n = ++this.#count
      this.#numbers.set(id, n)
      puts.push({ type: 'put', key: id, value: n })
    }
    if (puts.length > 0) await this.#sub.batch(puts)
  }
}
