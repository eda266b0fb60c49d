import t from 'tap'
import { LoginThrottle } from '../../src/auth/login-throttle.ts'
import type { LoginThrottleOptions } from '../../src/auth/login-throttle.ts'

const MINUTE = 60 * 1000
const HERE = '192.0.2.1'
const THERE = '198.51.100.7'

function setup (options: LoginThrottleOptions = {}) {
  const clock = { now: 1_700_000_000_000 }
  const throttle = new LoginThrottle({ now: () => clock.now, ...options })
  /** One failed login, as the guard does it; returns the delay it was told to wait (and lets it pass). */
  const failOnce = (username: string, client = HERE): number => {
    const wait = throttle.begin(username, client)
    clock.now += wait
    throttle.failure(username, client)
    return wait
  }
  return { throttle, clock, failOnce }
}

t.test('five free failures, then 250 ms doubling to a 2 s cap, then a lock', async (t) => {
  const { throttle, failOnce } = setup()
  const delays: number[] = []
  for (let i = 0; i < 10; i++) delays.push(failOnce('alice'))
  t.same(delays, [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 2000])
  t.throws(() => throttle.check('alice', HERE), {
    name: 'DwError', code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 15 * 60 }
  })
  t.throws(() => throttle.begin('alice', HERE), { code: 'TOO_MANY_ATTEMPTS' })
})

t.test('a lock holds one client out of one username, nobody else', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 12; i++) {
    try { failOnce('admin') } catch {}
  }
  t.throws(() => throttle.check('admin', HERE), { code: 'TOO_MANY_ATTEMPTS' })
  t.equal(throttle.check('admin', THERE), 0, 'another address signs in to admin without delay')
  t.equal(throttle.check('bob', HERE), 0, 'the locked-out address may still try other names')
})

t.test('retryAfterSeconds counts down and the lock ends after 15 minutes', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let i = 0; i < 10; i++) failOnce('alice')
  clock.now += 10 * MINUTE + 500
  t.throws(() => throttle.check('alice', HERE), { code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 5 * 60 } })
  clock.now += 5 * MINUTE - 500
  t.equal(throttle.check('alice', HERE), 0, 'unlocked, and the count starts over')
  t.equal(failOnce('alice'), 0)
})

t.test('success resets the pair\'s count', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 7; i++) failOnce('alice')
  t.equal(throttle.check('alice', HERE), 1000)
  throttle.begin('alice', HERE)
  throttle.success('alice', HERE)
  t.equal(throttle.check('alice', HERE), 0)
  for (let i = 0; i < 5; i++) t.equal(failOnce('alice'), 0)
  t.equal(throttle.check('alice', HERE), 250)
})

t.test('failures more than 15 minutes apart do not add up', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let i = 0; i < 5; i++) failOnce('alice')
  t.equal(throttle.check('alice', HERE), 250)
  clock.now += 15 * MINUTE + 1
  t.equal(throttle.check('alice', HERE), 0)
})

t.test('usernames are case-insensitive and keyed apart', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 10; i++) failOnce(i % 2 === 0 ? 'Alice' : 'ALICE')
  t.throws(() => throttle.check('alice', HERE), { code: 'TOO_MANY_ATTEMPTS' })
  t.equal(throttle.check('bob', HERE), 0, 'other users are unaffected')
})

t.test('known and unknown usernames are treated identically', async (t) => {
  // The throttle never learns whether an account exists; the same sequence
  // of calls must give the same delays and the same lock.
  const run = (username: string): unknown => {
    const { throttle, failOnce } = setup()
    const delays: number[] = []
    for (let i = 0; i < 10; i++) delays.push(failOnce(username))
    let error: unknown
    try { throttle.check(username, HERE) } catch (err) { error = err }
    return { delays, error: JSON.stringify(error), details: (error as { details?: unknown }).details }
  }
  t.same(run('admin'), run('no-such-user-4f1c'))
})

t.test('parallel attempts count while in flight', async (t) => {
  const { throttle } = setup()
  let passed = 0
  let refused: unknown
  for (let i = 0; i < 25; i++) {
    try { throttle.begin('alice', HERE); passed++ } catch (err) { refused = err }
  }
  t.equal(passed, 10, 'only lockAfter attempts get through at once')
  t.match(refused, { code: 'TOO_MANY_ATTEMPTS' })
  for (let i = 0; i < passed; i++) throttle.failure('alice', HERE)
  t.throws(() => throttle.check('alice', HERE), { code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 900 } }, 'the failures lock')
})

t.test('an abandoned attempt (refused by the queue) counts for nothing', async (t) => {
  const { throttle } = setup()
  for (let i = 0; i < 30; i++) {
    throttle.begin('alice', HERE)
    throttle.abandon('alice', HERE)
  }
  t.equal(throttle.check('alice', HERE), 0)
  t.equal(throttle.check('bob', HERE), 0)
})

t.test('one client failing over many usernames is slowed, and only that client', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 20; i++) t.equal(failOnce(`name-${i}`), 0, 'twenty free failures over all names')
  t.equal(throttle.check('fresh', HERE), 250)
  t.equal(failOnce('fresh-2'), 250)
  t.equal(throttle.check('fresh', HERE), 500, 'doubling per failure')
  t.equal(throttle.check('fresh', THERE), 0, 'another address is not slowed')
  throttle.begin('mine', HERE)
  throttle.success('mine', HERE)
  t.equal(throttle.check('fresh', HERE), 500, 'signing in to an account of its own does not wipe the record')
})

t.test('an account many clients are locked out of is locked for every client', async (t) => {
  const { throttle, clock, failOnce } = setup()
  const client = (i: number): string => `203.0.113.${i}`
  for (let c = 0; c < 9; c++) for (let i = 0; i < 10; i++) failOnce('admin', client(c))
  t.equal(throttle.check('admin', THERE), 0, 'nine locked-out addresses are not enough')
  for (let i = 0; i < 10; i++) failOnce('admin', client(9))
  t.throws(() => throttle.check('admin', THERE), { code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 900 } }, 'the tenth locks admin for everyone')
  t.equal(throttle.check('bob', THERE), 0, 'other accounts are unaffected')
  clock.now += 15 * MINUTE
  t.equal(throttle.check('admin', THERE), 0, 'the account lock ends with the address locks')
})

t.test('address locks that have ended do not add up to an account lock', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let c = 0; c < 9; c++) for (let i = 0; i < 10; i++) failOnce('admin', `203.0.113.${c}`)
  clock.now += 15 * MINUTE
  for (let i = 0; i < 10; i++) failOnce('admin', '203.0.113.200')
  t.equal(throttle.check('admin', THERE), 0)
})

t.test('one address can never lock an account for others, however long it keeps at it', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 10; i++) failOnce('admin')
    clock.now += 15 * MINUTE
  }
  t.equal(throttle.check('admin', THERE), 0)
})

t.test('the maps are bounded and a flood cannot evict a lock', async (t) => {
  const { throttle, failOnce } = setup({ maxEntries: 100 })
  for (let i = 0; i < 10; i++) failOnce('admin')
  for (let i = 0; i < 7; i++) failOnce('bob')
  for (let i = 0; i < 10_000; i++) failOnce(`random-${i}`, `10.0.${i >> 8}.${i & 255}`)
  t.ok(throttle.size <= 400, `size ${throttle.size}`)
  t.throws(() => throttle.check('admin', HERE), { code: 'TOO_MANY_ATTEMPTS' }, 'lock survives the flood')
  t.equal(throttle.check('bob', HERE), 0, 'the oldest counters were evicted')
  const last = `10.0.${9999 >> 8}.${9999 & 255}`
  t.equal(throttle.check('random-9999', last), 0)
  for (let i = 0; i < 4; i++) failOnce('random-9999', last)
  t.equal(throttle.check('random-9999', last), 250, 'recent counters kept')

  const locks = setup({ maxEntries: 10 })
  for (let u = 0; u < 50; u++) for (let i = 0; i < 10; i++) locks.failOnce(`user-${u}`)
  t.ok(locks.throttle.size <= 10 + 10 + 1 + 10, `locks are bounded too (size ${locks.throttle.size})`)
  t.throws(() => locks.throttle.check('user-49', HERE), { code: 'TOO_MANY_ATTEMPTS' })
})

t.test('very long usernames share one bounded key', async (t) => {
  const { throttle, failOnce } = setup()
  const long = 'x'.repeat(300)
  for (let i = 0; i < 5; i++) failOnce(`${long}-${i}`)
  t.equal(throttle.check(`${long}-other`, HERE), 250)
})

t.test('look-alike usernames that sign in to one account share its budget', async t => {
  const { throttle, failOnce } = setup({ freeFailures: 0, baseDelayMs: 1, lockAfter: 3, lockMs: 60_000 })
  // Full-width letters normalise (NFKC) to the ASCII name, as the login's own lookup does.
  for (const name of ['alice', 'ＡＬＩＣＥ', 'Ａlice']) failOnce(name)
  t.throws(() => throttle.begin('alice', HERE), { code: 'TOO_MANY_ATTEMPTS' }, 'locked after three failures spread over look-alikes')
})
