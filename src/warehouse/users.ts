import type { DocChangeEvent, DocMeta, DocStore } from '../crdt/doc-store.ts'
import { docKey, isRecordId, newId } from '../crdt/keys.ts'
import { recordView, type RecordView } from '../crdt/merge-view.ts'
import { isDeleted, markDeleted, restore } from '../crdt/records/common.ts'
import { initUser, normaliseUsername, patchUser, type Role, type UserPatch } from '../crdt/records/user.ts'
import type { RecordSummary } from '../crdt/summary.ts'
import { UsernameClaims, type UserClaim } from '../crdt/username-claims.ts'
import type { AccountsSeen } from './accounts-seen.ts'
import { DEFAULT_SCRYPT_PARAMS, dummyVerify, hashPassword, validatePasswordPolicy, verifyPassword, type ScryptParams } from '../auth/passwords.ts'
import type { SessionStore } from '../auth/sessions.ts'
import type { LoginGuard } from '../auth/login-guard.ts'
import { DwError } from '../errors.ts'
import { KeyLock } from '../key-lock.ts'
import { Slots } from './slots.ts'
import { actorOf, requireAdmin, type Principal } from './principal.ts'

export interface NewUser {
  username: string
  password: string
  role: Role
  email?: string
  displayName?: string
}

export interface UserChanges extends Omit<UserPatch, 'passwordHash'> {
  password?: string
  /** Required when users change their own password. */
  currentPassword?: string
}

export type UserView = RecordView & { usernameConflict: boolean }

/** Each scrypt check allocates ~128 MiB: at most this many run at once. */
const PASSWORD_CHECKS_AT_ONCE = 2

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function validateUsername (username: string): void {
  if (!USERNAME.test(username)) {
    throw new DwError('INVALID_INPUT', 'username must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit')
  }
}

/** User accounts, login and the username-claim rule. */
export class Users {
  readonly #docs: DocStore<RecordSummary>
  readonly #sessions: SessionStore
  readonly #loginGuard: LoginGuard
  readonly #claims = new UsernameClaims()
  readonly #slots = new Slots(PASSWORD_CHECKS_AT_ONCE)
  /** This node's bootstrap admin: local-only, its id derived from the node's peer id. */
  readonly #localAdminId: string
  /** Per account, what its sessions were issued under; a change to any of it, from anywhere, ends them. */
  readonly #credentials = new Map<string, string>()

  /**
   * One username's check and write at a time: two requests for a free name
   * both passed the check while hashing their passwords, and the node
   * acknowledged both (a partition simulation, seed 108).
   */
  readonly #names = new KeyLock()

  /** When this node first saw each account: the username rule's order, kept across restarts. */
  readonly #seen: AccountsSeen

  /** What new password hashes cost (config.json `login.passwordCost`). */
  readonly #passwordParams: ScryptParams

  private constructor (docs: DocStore<RecordSummary>, sessions: SessionStore, loginGuard: LoginGuard, localAdminId: string, seen: AccountsSeen, passwordParams: ScryptParams) {
    this.#passwordParams = passwordParams
    this.#seen = seen
    this.#docs = docs
    this.#sessions = sessions
    this.#loginGuard = loginGuard
    this.#localAdminId = localAdminId
  }

  static async open (docs: DocStore<RecordSummary>, sessions: SessionStore, loginGuard: LoginGuard, localAdminId: string, seen: AccountsSeen, passwordParams: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<Users> {
    const users = new Users(docs, sessions, loginGuard, localAdminId, seen, passwordParams)
    const found: Array<[string, RecordSummary, boolean]> = []
    for await (const [key, meta] of docs.scan('user/')) found.push([key, meta.summary, meta.local === true])
    // Accounts not yet numbered (a store from before the rule) count as seen in creation order.
    found.sort(([ka, a], [kb, b]) => a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : ka < kb ? -1 : 1)
    await seen.numberUnseen(found.map(([key]) => key.slice('user/'.length)))
    for (const [key, summary, local] of found) users.#claim(key, summary, local, seen.numberOf(key.slice('user/'.length)))
    // Accounts arrive from peers too: keep the claims current whatever the origin.
    docs.on('change', users.#onChange)
    return users
  }

  readonly #onChange = (event: { key: string, meta: DocMeta<RecordSummary> }): void => {
    if (!event.key.startsWith('user/')) return
    const summary = event.meta.summary
    const id = event.key.slice('user/'.length)
    this.#claim(event.key, summary, event.meta.local === true, this.#seen.numberOf(id))
    // A password, role, disable or delete made on any site ends the sessions here too.
    const credential = credentialOf(summary)
    const prior = this.#credentials.get(id)
    this.#credentials.set(id, credential)
    if (prior !== undefined && prior !== credential) void this.#sessions.revokeAllFor(id).catch(() => {})
  }

  /** Stops following the store: a node that stops leaves no listener behind. */
  stop (): void {
    this.#docs.off('change', this.#onChange)
  }

  #claim (key: string, s: RecordSummary, local: boolean, seen: number | undefined): void {
    const id = key.slice('user/'.length)
    if (!this.#credentials.has(id)) this.#credentials.set(id, credentialOf(s))
    const claim: UserClaim = { id, username: s.username ?? '', createdAt: s.createdAt, deleted: s.deleted, local }
    if (seen !== undefined) claim.seen = seen
    this.#claims.set(claim)
  }

  /**
   * Creates an account. `who` undefined is the node itself bootstrapping its
   * first admin, which stays local: every site has an `admin`, and
   * replicating them would make each site's admin a username collision.
   */
  async create (who: Principal | undefined, input: NewUser): Promise<UserView> {
    if (who !== undefined) requireAdmin(who)
    validateUsername(input.username)
    validatePasswordPolicy(input.password)
    if (this.#claims.owner(input.username) !== undefined) {
      throw new DwError('CONFLICT', `username ${input.username} is taken`)
    }
    const id = who === undefined ? this.#localAdminId : newId()
    const passwordHash = await this.#slots.run(async () => await hashPassword(input.password, this.#passwordParams))
    const actor = who !== undefined ? actorOf(who) : { userId: id, at: new Date().toISOString() }
    return await this.#names.run(normaliseUsername(input.username), async () => {
      // Again, now that no other request can take the name meanwhile.
      if (this.#claims.owner(input.username) !== undefined) throw new DwError('CONFLICT', `username ${input.username} is taken`)
      return await this.#viewAfter(id, await this.#docs.create(docKey('user', id), doc => initUser(doc, id, { ...input, passwordHash }, actor), who === undefined ? { local: true } : { author: who.userId }))
    })
  }

  /**
   * A bootstrap admin made before its id was derived from the peer id (a
   * data directory of the previous version) is made again under the derived
   * id, with its name and password, and the old one is deleted. Both are
   * local-only. Returns the id to use from now on.
   */
  async migrateLocalAdmin (oldId: string): Promise<string> {
    const id = this.#localAdminId
    if (oldId === id || !isRecordId(oldId)) return id
    const old = await this.#docs.read(docKey('user', oldId), (doc, meta) => doc === undefined || meta?.local !== true || isDeleted(doc)
      ? undefined
      : { username: String(doc.username), passwordHash: String(doc.passwordHash), email: String(doc.email ?? ''), displayName: String(doc.displayName ?? '') })
    if (old === undefined) return id
    const at = new Date().toISOString()
    if (await this.#docs.meta(docKey('user', id)) === undefined) {
      await this.#docs.create(docKey('user', id), doc => initUser(doc, id, { ...old, role: 'admin' }, { userId: id, at }), { local: true })
    }
    await this.#docs.change(docKey('user', oldId), doc => markDeleted(doc, { userId: id, at }))
    await this.#sessions.revokeAllFor(oldId)
    return id
  }

  /** Brings back a deleted account (admins). Its old sessions stay ended. */
  async restore (who: Principal, id: string): Promise<UserView> {
    requireAdmin(who)
    if (!isRecordId(id)) throw new DwError('NOT_FOUND', `user ${id} not found`)
    const restored = await this.#docs.change(docKey('user', id), doc => {
      if (!isDeleted(doc)) return false
      restore(doc, actorOf(who))
    }, { author: who.userId })
    return await this.#viewAfter(id, restored)
  }

  /** Deletes an account (a tombstone, replicated) and ends its sessions. */
  async remove (who: Principal, id: string): Promise<void> {
    requireAdmin(who)
    if (who.userId === id) throw new DwError('INVALID_INPUT', 'you cannot delete your own account')
    await this.#docs.change(docKey('user', id), doc => markDeleted(doc, actorOf(who)), { author: who.userId })
    await this.#sessions.revokeAllFor(id)
  }

  /** The account as its change left it, not as a change landing after it made it (records.ts #viewAfter). */
  async #viewAfter (id: string, event: DocChangeEvent<RecordSummary>): Promise<UserView> {
    const view = await this.#docs.readAt(docKey('user', id), event.meta.heads, doc => doc === undefined ? undefined : recordView(doc))
    if (view === undefined) throw new DwError('NOT_FOUND', `user ${id} not found`)
    return { ...view, usernameConflict: this.#claims.isConflicted(id) }
  }

  async get (id: string): Promise<UserView> {
    const view = isRecordId(id)
      ? await this.#docs.read(docKey('user', id), doc => doc === undefined ? undefined : recordView(doc))
      : undefined
    if (view === undefined) throw new DwError('NOT_FOUND', `user ${id} not found`)
    return { ...view, usernameConflict: this.#claims.isConflicted(id) }
  }

  async list (): Promise<Array<RecordSummary & { id: string, usernameConflict: boolean }>> {
    const out = []
    for await (const [key, meta] of this.#docs.scan('user/')) {
      const id = key.slice('user/'.length)
      out.push({ id, ...meta.summary, usernameConflict: this.#claims.isConflicted(id) })
    }
    return out
  }

  conflicts (): Array<{ username: string, ids: string[] }> {
    return this.#claims.conflicts()
  }

  async update (who: Principal, id: string, changes: UserChanges): Promise<UserView> {
    const self = who.userId === id
    const adminOnly = changes.role !== undefined || changes.disabled !== undefined || changes.username !== undefined || changes.sites !== undefined
    if (who.role !== 'admin' && (!self || adminOnly)) requireAdmin(who)
    if (changes.username !== undefined) {
      validateUsername(changes.username)
      const owner = this.#claims.owner(changes.username)
      if (owner !== undefined && owner !== id) throw new DwError('CONFLICT', `username ${changes.username} is taken`)
    }
    const patch: UserPatch = { ...changes }
    delete (patch as UserChanges).password
    delete (patch as UserChanges).currentPassword
    if (changes.password !== undefined) {
      validatePasswordPolicy(changes.password)
      if (self && who.role !== 'admin') {
        const current = await this.#docs.read(docKey('user', id), doc => doc?.passwordHash as string | undefined)
        if (changes.currentPassword === undefined || current === undefined || !await this.#slots.run(async () => await verifyPassword(changes.currentPassword as string, current))) {
          throw new DwError('FORBIDDEN', 'the current password is wrong')
        }
      }
      patch.passwordHash = await this.#slots.run(async () => await hashPassword(changes.password as string, this.#passwordParams))
    }
    const write = async (): Promise<DocChangeEvent<RecordSummary>> => await this.#docs.change(docKey('user', id), doc => {
      if (isDeleted(doc)) throw new DwError('RECORD_DELETED', `user ${id} was deleted`)
      patchUser(doc, patch, actorOf(who))
    }, { author: who.userId })
    const rename = changes.username
    const changed = rename === undefined
      ? await write()
      : await this.#names.run(normaliseUsername(rename), async () => {
        const owner = this.#claims.owner(rename)
        if (owner !== undefined && owner !== id) throw new DwError('CONFLICT', `username ${rename} is taken`)
        return await write()
      })
    if (changes.disabled === true || changes.password !== undefined) await this.#sessions.revokeAllFor(id)
    return await this.#viewAfter(id, changed)
  }

  /**
   * Same answer and similar cost for an unknown name, a wrong password, a
   * disabled account and a name held by an earlier account: nothing tells
   * an attacker which usernames exist. `client` is the request's address:
   * login limits count per address (src/auth/login-guard.ts).
   */
  async login (username: string, password: string, client: string): Promise<{ token: string, expiresAt: string, user: UserView }> {
    const id = await this.#loginGuard.attempt(username, client, async () => {
      const owner = this.#claims.owner(username)
      const account = owner === undefined
        ? undefined
        : await this.#docs.read(docKey('user', owner), doc => doc === undefined ? undefined : { hash: String(doc.passwordHash), usable: !doc.disabled && !isDeleted(doc) })
      const ok = await this.#slots.run(async () => account === undefined ? await dummyVerify(password, this.#passwordParams) && false : await verifyPassword(password, account.hash))
      return ok && account?.usable === true ? owner : undefined
    })
    if (id === undefined) throw new DwError('UNAUTHENTICATED', 'wrong username or password')
    const session = await this.#sessions.issue(id)
    return { token: session.token, expiresAt: new Date(session.expiresAt).toISOString(), user: await this.get(id) }
  }

  async logout (token: string): Promise<void> {
    await this.#sessions.revoke(token)
  }

  /** The principal behind a session token, if the token and the account are both still good. */
  async authenticate (token: string): Promise<Principal | undefined> {
    const session = await this.#sessions.verify(token)
    if (session === undefined) return undefined
    return await this.principal(session.userId)
  }

  async principal (userId: string): Promise<Principal | undefined> {
    return await this.#docs.read(docKey('user', userId), doc => {
      if (doc === undefined || doc.disabled === true || isDeleted(doc)) return undefined
      return { userId, username: String(doc.username), role: doc.role === 'admin' ? 'admin' : 'member' } satisfies Principal
    })
  }
}

/** What sessions depend on: the password, the role, and whether the account can be used. */
function credentialOf (s: RecordSummary): string {
  return JSON.stringify([s.pw ?? '', s.role ?? '', s.disabled === true, s.deleted])
}
