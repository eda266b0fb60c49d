import { localAdminIdOf, type RosterEntry } from '../trust/roster.ts'

/**
 * The bootstrap `admin` of another site, as this node can describe it. Each
 * node's first admin is local (never replicated: every site has one, and
 * replicating them would make every `admin` a username collision), but the
 * records it writes travel with its id, which is derived from its node's
 * peer id (`localAdminIdOf`). The roster names every node, so this node can
 * say whose admin an id is without ever holding the account.
 */
export interface SiteAdmin {
  id: string
  /** `admin@<site name>`, or `admin@<short peer id>` when the roster has no name for the node. */
  username: string
  role: 'admin'
  peerId: string
  site: string
  /** Not an account on this node: it cannot sign in here, and nothing about it can be changed here. */
  readOnly: true
  bootstrapAdmin: true
}

/** The last characters of a peer id: how libp2p abbreviates one. */
export function shortPeerId (peerId: string): string {
  return peerId.slice(-8)
}

export function siteAdminOf (entry: Pick<RosterEntry, 'peerId' | 'name'>): SiteAdmin {
  const site = entry.name.trim() !== '' ? entry.name.trim() : shortPeerId(entry.peerId)
  return { id: localAdminIdOf(entry.peerId), username: `admin@${site}`, role: 'admin', peerId: entry.peerId, site, readOnly: true, bootstrapAdmin: true }
}

/** Other sites' bootstrap admins, by id, from the mesh roster. */
export class SiteAdmins {
  readonly #roster: () => Promise<Array<Pick<RosterEntry, 'peerId' | 'name'>>>
  readonly #self: string

  /** `self`: this node's peer id; its own admin is a real (local) account here. */
  constructor (roster: () => Promise<Array<Pick<RosterEntry, 'peerId' | 'name'>>>, self: string) {
    this.#roster = roster
    this.#self = self
  }

  async all (): Promise<Map<string, SiteAdmin>> {
    const out = new Map<string, SiteAdmin>()
    for (const entry of await this.#roster()) {
      if (entry.peerId === this.#self) continue
      const admin = siteAdminOf(entry)
      out.set(admin.id, admin)
    }
    return out
  }

  async find (id: string): Promise<SiteAdmin | undefined> {
    return (await this.all()).get(id)
  }

  /**
   * `admin@<site>` for the bootstrap admin of every node in the roster,
   * this one's included: a record reads the same on every site (the
   * simulator's checker and a repair compare records across nodes), where
   * plain `admin` would name a different account on each.
   */
  async names (): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (const entry of await this.#roster()) {
      const admin = siteAdminOf(entry)
      out.set(admin.id, admin.username)
    }
    return out
  }
}
