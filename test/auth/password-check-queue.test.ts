import t from 'tap'
import { PasswordCheckQueue } from '../../src/auth/password-check-queue.ts'

/** A check the test finishes by hand, recording when it started. */
function checks () {
  const started: string[] = []
  const finish = new Map<string, () => void>()
  const check = (name: string) => async (): Promise<string> => {
    started.push(name)
    await new Promise<void>(resolve => finish.set(name, resolve))
    return name
  }
  const done = async (name: string): Promise<void> => {
    for (let i = 0; i < 100 && !finish.has(name); i++) await tick()
    const resolve = finish.get(name)
    if (resolve === undefined) throw new Error(`${name} never started`)
    resolve()
    // Let the finished check hand its turn on.
    await tick()
  }
  return { started, check, done }
}

const tick = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

t.test('one check per client: more are refused at once, before any work', async t => {
  const queue = new PasswordCheckQueue()
  const { started, check, done } = checks()
  const first = queue.run('a', check('a1'))
  let ran = false
  await t.rejects(queue.run('a', async () => { ran = true }), {
    code: 'TOO_MANY_ATTEMPTS', details: { retryAfterSeconds: 1, limit: 'client' }
  })
  t.notOk(ran, 'the refused check never ran')
  t.same(started, ['a1'])
  await done('a1')
  t.equal(await first, 'a1')
  const again = queue.run('a', check('a2'))
  await done('a2')
  t.equal(await again, 'a2', 'admitted again once the first ended')
})

t.test('at most checksAtOnce run at once, the rest wait', async t => {
  const queue = new PasswordCheckQueue({ checksAtOnce: 2 })
  const { started, check, done } = checks()
  const runs = ['a', 'b', 'c'].map(c => queue.run(c, check(c)))
  await tick()
  t.same(started, ['a', 'b'])
  await done('a')
  t.same(started, ['a', 'b', 'c'])
  await done('b')
  await done('c')
  t.same(await Promise.all(runs), ['a', 'b', 'c'])
})

t.test('waiting checks take turns by client: a busy client cannot hold back another', async t => {
  const queue = new PasswordCheckQueue({ checksAtOnce: 1, checksPerClient: 10 })
  const { started, check, done } = checks()
  const runs = [1, 2, 3, 4, 5].map(i => queue.run('flood', check(`flood-${i}`)))
  runs.push(queue.run('admin', check('admin')))
  for (const name of ['flood-1', 'flood-2', 'admin', 'flood-3', 'flood-4', 'flood-5']) await done(name)
  await Promise.all(runs)
  t.same(started, ['flood-1', 'flood-2', 'admin', 'flood-3', 'flood-4', 'flood-5'],
    'admin waited behind the running check and one queued check of the flood, not all of them')
})

t.test('beyond queuedChecks waiting in all, requests are refused', async t => {
  const queue = new PasswordCheckQueue({ checksAtOnce: 1, queuedChecks: 2 })
  const { started, check, done } = checks()
  const runs = ['a', 'b', 'c'].map(c => queue.run(c, check(c)))
  await t.rejects(queue.run('d', check('d')), { code: 'TOO_MANY_ATTEMPTS', details: { limit: 'node' } })
  for (const name of ['a', 'b', 'c']) await done(name)
  t.same(await Promise.all(runs), ['a', 'b', 'c'])
  t.same(started, ['a', 'b', 'c'])
  const later = queue.run('d', check('d'))
  await done('d')
  t.equal(await later, 'd', 'the refused client is served once there is room')
})

t.test('a delay holds the client\'s admission, not a turn', async t => {
  const slept: Array<() => void> = []
  const queue = new PasswordCheckQueue({ checksAtOnce: 1, sleep: async () => { await new Promise<void>(resolve => slept.push(resolve)) } })
  const { started, check, done } = checks()
  const slow = queue.run('slow', check('slow'), 2000)
  await t.rejects(queue.run('slow', check('slow-2')), { code: 'TOO_MANY_ATTEMPTS', details: { limit: 'client' } }, 'the delayed client has no second admission')
  const other = queue.run('other', check('other'))
  await tick()
  t.same(started, ['other'], 'another client runs while the delayed one waits')
  slept[0]?.()
  await done('other')
  await done('slow')
  t.same(await Promise.all([slow, other]), ['slow', 'other'])
})

t.test('a check that throws gives back its turn and its admission', async t => {
  const queue = new PasswordCheckQueue({ checksAtOnce: 1 })
  await t.rejects(queue.run('a', async () => { throw new Error('boom') }), { message: 'boom' })
  t.equal(await queue.run('a', async () => 'next'), 'next')
})
