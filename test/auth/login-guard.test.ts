import t from 'tap'
import { LoginGuard, parseLoginLimits } from '../../src/auth/login-guard.ts'

const wrong = async (): Promise<string | undefined> => undefined
const right = async (): Promise<string | undefined> => 'user-id'

t.test('an attempt yields what the check yields and records it', async t => {
  const guard = new LoginGuard({ baseDelayMs: 0, lockAfter: 3 })
  t.equal(await guard.attempt('alice', '192.0.2.1', right), 'user-id')
  for (let i = 0; i < 3; i++) t.equal(await guard.attempt('alice', '192.0.2.1', wrong), undefined)
  let ran = false
  await t.rejects(guard.attempt('alice', '192.0.2.1', async () => { ran = true; return 'x' }), { code: 'TOO_MANY_ATTEMPTS' })
  t.notOk(ran, 'a locked pair checks no password')
  t.equal(await guard.attempt('alice', '192.0.2.2', right), 'user-id', 'another address is not locked')
})

t.test('addresses are keyed as clientKeyOf says: one IPv6 /64 is one client', async t => {
  const guard = new LoginGuard({ baseDelayMs: 0, lockAfter: 2 })
  await guard.attempt('alice', '2001:db8::1', wrong)
  await guard.attempt('alice', '2001:db8::2', wrong)
  await t.rejects(guard.attempt('alice', '2001:db8::ffff', right), { code: 'TOO_MANY_ATTEMPTS' })
  t.equal(await guard.attempt('alice', '2001:db8:0:1::1', right), 'user-id', 'the next /64 is another client')
})

t.test('a request refused by the queue costs the pair nothing', async t => {
  const guard = new LoginGuard({ lockAfter: 3 })
  let release = (): void => {}
  const slow = guard.attempt('alice', '192.0.2.1', async () => { await new Promise<void>(resolve => { release = resolve }); return undefined })
  for (let i = 0; i < 5; i++) {
    await t.rejects(guard.attempt('alice', '192.0.2.1', right), { code: 'TOO_MANY_ATTEMPTS', details: { limit: 'client' } })
  }
  await new Promise(resolve => setImmediate(resolve))
  release()
  t.equal(await slow, undefined)
  t.equal(await guard.attempt('alice', '192.0.2.1', right), 'user-id', 'one failure so far, not six: no lock')
})

t.test('config.json "login" is validated', async t => {
  t.same(parseLoginLimits(undefined), {})
  t.same(parseLoginLimits({ checksPerClient: 2, freeFailures: 0 }), { checksPerClient: 2, freeFailures: 0 })
  t.throws(() => parseLoginLimits([]), { code: 'CONFIG_INVALID' })
  t.throws(() => parseLoginLimits({ checkPerClient: 2 }), { code: 'CONFIG_INVALID', message: /login\.checkPerClient" is not a setting/ })
  t.throws(() => parseLoginLimits({ checksPerClient: 0 }), { code: 'CONFIG_INVALID', message: /at least 1/ })
  t.throws(() => parseLoginLimits({ lockMs: '15m' }), { code: 'CONFIG_INVALID' })
  t.throws(() => parseLoginLimits({ baseDelayMs: 0.5 }), { code: 'CONFIG_INVALID' })
})
