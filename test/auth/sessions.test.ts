import t from 'tap'
import type { Test } from 'tap'
import { createHash } from 'node:crypto'
import { jsonSublevel, openDb } from '../../src/db.ts'
import { SessionStore } from '../../src/auth/sessions.ts'
import type { SessionRecord, SessionStoreOptions } from '../../src/auth/sessions.ts'

const MINUTE = 60 * 1000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

async function setup (t: Test, options: SessionStoreOptions = {}) {
  const db = await openDb(t.testdir())
  t.teardown(() => db.close())
  const sessions = jsonSublevel<SessionRecord>(db, 'sessions')
  const clock = { now: 1_700_000_000_000 }
  const store = new SessionStore(sessions, { now: () => clock.now, ...options })
  const records = async (): Promise<Array<[string, SessionRecord]>> => await sessions.iterator().all()
  return { store, sessions, clock, records }
}

t.test('issue then verify', async (t) => {
  const { store, clock } = await setup(t)
  const { token, expiresAt } = await store.issue('user-1')
  t.match(token, /^[A-Za-z0-9_-]{43}$/)
  t.equal(Buffer.from(token, 'base64url').length, 32)
  t.equal(expiresAt, clock.now + 12 * HOUR)
  t.same(await store.verify(token), { userId: 'user-1' })
  const other = await store.issue('user-1')
  t.not(other.token, token)
  t.same(await store.verify(other.token), { userId: 'user-1' })
})

t.test('the token is stored only as its sha256', async (t) => {
  const { store, records } = await setup(t)
  const { token } = await store.issue('user-1')
  const rows = await records()
  t.equal(rows.length, 1)
  const [key, record] = rows[0] ?? []
  t.equal(key, createHash('sha256').update(token).digest('hex'))
  t.notMatch(JSON.stringify(rows), token)
  t.notMatch(JSON.stringify(rows), Buffer.from(token, 'base64url').toString('hex'))
  t.match(record, { userId: 'user-1', createdAt: Number, lastSeenAt: Number })
})

t.test('idle timeout, with lastSeenAt refreshed at most once a minute', async (t) => {
  const { store, clock, records } = await setup(t)
  const { token } = await store.issue('user-1')
  const issuedAt = clock.now

  clock.now += 30 * 1000
  t.ok(await store.verify(token))
  t.equal((await records())[0]?.[1].lastSeenAt, issuedAt, 'no write within the first minute')

  clock.now = issuedAt + 11 * HOUR
  t.ok(await store.verify(token))
  t.equal((await records())[0]?.[1].lastSeenAt, clock.now, 'refreshed')

  clock.now += 12 * HOUR - 1
  t.ok(await store.verify(token), 'activity extends the idle deadline')

  clock.now += 12 * HOUR
  t.equal(await store.verify(token), undefined, 'idle too long')
  t.equal((await records()).length, 0, 'expired session deleted when seen')
  t.equal(await store.verify(token), undefined)
})

t.test('absolute lifetime, however active', async (t) => {
  const { store, clock, records } = await setup(t, { idleTimeoutMs: HOUR, absoluteLifetimeMs: 3 * HOUR })
  const { token, expiresAt } = await store.issue('user-1')
  t.equal(expiresAt, clock.now + HOUR)
  const issuedAt = clock.now
  while (clock.now < issuedAt + 3 * HOUR - 30 * MINUTE) {
    clock.now += 30 * MINUTE
    t.ok(await store.verify(token), `active at +${(clock.now - issuedAt) / MINUTE} min`)
  }
  clock.now = issuedAt + 3 * HOUR
  t.equal(await store.verify(token), undefined)
  t.equal((await records()).length, 0)
})

t.test('defaults: 12 hours idle, 7 days absolute', async (t) => {
  const { store, clock } = await setup(t)
  const idle = await store.issue('user-1')
  clock.now += 12 * HOUR
  t.equal(await store.verify(idle.token), undefined, 'idle for 12 hours')

  const { token } = await store.issue('user-1')
  const issuedAt = clock.now
  while (clock.now + 11 * HOUR < issuedAt + 7 * DAY) {
    clock.now += 11 * HOUR
    t.ok(await store.verify(token))
  }
  clock.now = issuedAt + 7 * DAY
  t.equal(await store.verify(token), undefined, 'gone after 7 days')
})

t.test('revoke ends one session', async (t) => {
  const { store, records } = await setup(t)
  const a = await store.issue('user-1')
  const b = await store.issue('user-1')
  await store.revoke(a.token)
  t.equal(await store.verify(a.token), undefined)
  t.same(await store.verify(b.token), { userId: 'user-1' })
  t.equal((await records()).length, 1)
  await store.revoke(a.token)
  await store.revoke('not a token')
  t.pass('revoking an unknown or malformed token is a no-op')
})

t.test('revokeAllFor ends every session of one user only', async (t) => {
  const { store } = await setup(t)
  const mine = [await store.issue('user-1'), await store.issue('user-1'), await store.issue('user-1')]
  const theirs = await store.issue('user-2')
  t.equal(await store.revokeAllFor('user-1'), 3)
  for (const { token } of mine) t.equal(await store.verify(token), undefined)
  t.same(await store.verify(theirs.token), { userId: 'user-2' })
  t.equal(await store.revokeAllFor('user-1'), 0)
})

t.test('a refresh racing a revoke does not resurrect the session', async (t) => {
  const { store, clock, records } = await setup(t)
  const { token } = await store.issue('user-1')
  clock.now += 5 * MINUTE
  await Promise.all([store.verify(token), store.revoke(token), store.verify(token)])
  t.equal((await records()).length, 0)
  t.equal(await store.verify(token), undefined)
})

t.test('purgeExpired removes sessions never seen again', async (t) => {
  const { store, clock, records } = await setup(t)
  await store.issue('user-1')
  clock.now += 6 * HOUR
  const fresh = await store.issue('user-2')
  clock.now += 7 * HOUR
  t.equal(await store.purgeExpired(), 1)
  t.equal((await records()).length, 1)
  t.ok(await store.verify(fresh.token))
})

t.test('malformed tokens return undefined without a lookup', async (t) => {
  const { store, sessions } = await setup(t)
  const { token } = await store.issue('user-1')
  let gets = 0
  const get = sessions.get.bind(sessions)
  sessions.get = ((...args: Parameters<typeof get>) => { gets++; return get(...args) }) as typeof sessions.get
  const bad: unknown[] = [
    '', 'abc', token.slice(1), `${token}A`, `${token.slice(0, 42)}=`, `${token.slice(0, 42)}+`,
    token.replace(/^./, ' '), 'x'.repeat(100_000), undefined, null, 42, { token }, [token]
  ]
  for (const value of bad) t.equal(await store.verify(value), undefined, JSON.stringify(value)?.slice(0, 30))
  t.equal(gets, 0)
  const forged = 'A'.repeat(43)
  t.equal(await store.verify(forged), undefined, 'well-formed but unknown')
  t.equal(gets, 1)
})
