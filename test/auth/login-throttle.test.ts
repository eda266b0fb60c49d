import t from 'tap'
import { LoginThrottle } from '../../src/auth/login-throttle.ts'
import type { LoginThrottleOptions } from '../../src/auth/login-throttle.ts'

const MINUTE = 60 * 1000

function setup (options: LoginThrottleOptions = {}) {
  const clock = { now: 1_700_000_000_000 }
  const slept: number[] = []
  const throttle = new LoginThrottle({
    now: () => clock.now,
    sleep: async (ms) => { slept.push(ms); clock.now += ms },
    ...options
  })
  /** One failed login, as the API does it; returns the delay it waited. */
  const failOnce = async (username: string): Promise<number> => {
    const before = slept.length
    await throttle.before(username)
    throttle.failure(username)
    return slept.slice(before).reduce((a, b) => a + b, 0)
  }
  return { throttle, clock, slept, failOnce }
}

t.test('five free failures, then 250 ms doubling to a 2 s cap, then a lock', async (t) => {
  const { throttle, failOnce } = setup()
  const delays: number[] = []
  for (let i = 0; i < 10; i++) delays.push(await failOnce('alice'))
  t.same(delays, [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 2000])
  t.throws(() => throttle.check('alice'), {
    name: 'DwError', code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 15 * 60 }
  })
  await t.rejects(throttle.before('alice'), { code: 'TOO_MANY_ATTEMPTS' })
})

t.test('retryAfterSeconds counts down and the lock ends after 15 minutes', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let i = 0; i < 10; i++) await failOnce('alice')
  clock.now += 10 * MINUTE + 500
  t.throws(() => throttle.check('alice'), { code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 5 * 60 } })
  clock.now += 5 * MINUTE - 500
  t.equal(throttle.check('alice'), 0, 'unlocked, and the count starts over')
  t.equal(await failOnce('alice'), 0)
})

t.test('success resets the count', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 7; i++) await failOnce('alice')
  t.equal(throttle.check('alice'), 1000)
  await throttle.before('alice')
  throttle.success('alice')
  t.equal(throttle.check('alice'), 0)
  for (let i = 0; i < 5; i++) t.equal(await failOnce('alice'), 0)
  throttle.recordFailure('alice')
  t.equal(throttle.check('alice'), 500, 'recordFailure is failure')
  throttle.recordSuccess('alice')
  t.equal(throttle.check('alice'), 0, 'recordSuccess is success')
})

t.test('failures more than 15 minutes apart do not add up', async (t) => {
  const { throttle, clock, failOnce } = setup()
  for (let i = 0; i < 5; i++) await failOnce('alice')
  t.equal(throttle.check('alice'), 250)
  clock.now += 15 * MINUTE + 1
  t.equal(throttle.check('alice'), 0)
})

t.test('usernames are case-insensitive and keyed apart', async (t) => {
  const { throttle, failOnce } = setup()
  for (let i = 0; i < 10; i++) await failOnce(i % 2 === 0 ? 'Alice' : 'ALICE')
  t.throws(() => throttle.check('alice'), { code: 'TOO_MANY_ATTEMPTS' })
  t.equal(throttle.check('bob'), 0, 'other users are unaffected')
})

t.test('known and unknown usernames are treated identically', async (t) => {
  // The throttle never learns whether an account exists; the same sequence
  // of calls must give the same delays and the same lock.
  const run = async (username: string): Promise<unknown> => {
    const { throttle, failOnce } = setup()
    const delays: number[] = []
    for (let i = 0; i < 10; i++) delays.push(await failOnce(username))
    let error: unknown
    try { throttle.check(username) } catch (err) { error = err }
    return { delays, error: JSON.stringify(error), details: (error as { details?: unknown }).details }
  }
  t.same(await run('admin'), await run('no-such-user-4f1c'))
})

t.test('parallel attempts count while in flight', async (t) => {
  const { throttle } = setup({ sleep: async () => {} })
  const results = await Promise.allSettled(Array.from({ length: 25 }, () => throttle.before('alice')))
  const passed = results.filter((r) => r.status === 'fulfilled').length
  t.equal(passed, 10, 'only lockAfter attempts get through at once')
  t.match(results.find((r) => r.status === 'rejected'), { reason: { code: 'TOO_MANY_ATTEMPTS' } })
  for (let i = 0; i < passed; i++) throttle.failure('alice')
  t.throws(() => throttle.check('alice'), { code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 900 } }, 'the failures lock')
})

t.test('the map is bounded and a flood cannot evict a lock', async (t) => {
  const { throttle, failOnce } = setup({ maxEntries: 100 })
  for (let i = 0; i < 10; i++) await failOnce('admin')
  for (let i = 0; i < 7; i++) await failOnce('bob')
  for (let i = 0; i < 10_000; i++) await failOnce(`random-${i}`)
  t.ok(throttle.size <= 200, `size ${throttle.size}`)
  t.throws(() => throttle.check('admin'), { code: 'TOO_MANY_ATTEMPTS' }, 'lock survives the flood')
  t.equal(throttle.check('bob'), 0, 'the oldest counters were evicted')
  t.equal(throttle.check('random-9999'), 0)
  await failOnce('random-9999')
  await failOnce('random-9999')
  await failOnce('random-9999')
  await failOnce('random-9999')
  t.equal(throttle.check('random-9999'), 250, 'recent counters kept')

  const locks = setup({ maxEntries: 10 })
  for (let u = 0; u < 50; u++) for (let i = 0; i < 10; i++) await locks.failOnce(`user-${u}`)
  t.equal(locks.throttle.size, 10, 'locks are bounded too')
  t.throws(() => locks.throttle.check('user-49'), { code: 'TOO_MANY_ATTEMPTS' })
})

t.test('very long usernames share one bounded key', async (t) => {
  const { throttle, failOnce } = setup()
  const long = 'x'.repeat(300)
  for (let i = 0; i < 5; i++) await failOnce(`${long}-${i}`)
  t.equal(throttle.check(`${long}-other`), 250)
})

t.test('real sleep by default', async (t) => {
  const throttle = new LoginThrottle({ freeFailures: 0, baseDelayMs: 30 })
  const start = Date.now()
  await throttle.before('alice')
  t.ok(Date.now() - start >= 25)
  throttle.success('alice')
})

t.test('look-alike usernames that sign in to one account share its budget', async t => {
  const throttle = new LoginThrottle({ freeFailures: 0, baseDelayMs: 1, lockAfter: 3, lockMs: 60_000 })
  // Full-width letters normalise (NFKC) to the ASCII name, as the login's own lookup does.
  for (const name of ['alice', 'ＡＬＩＣＥ', 'Ａlice']) {
    await throttle.before(name)
    throttle.failure(name)
  }
  await t.rejects(throttle.before('alice'), { code: 'TOO_MANY_ATTEMPTS' }, 'locked after three failures spread over look-alikes')
})
