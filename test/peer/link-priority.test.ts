// Records before files (issue 11): a file piece to a peer waits while a
// sync session to that peer has records moving, is let go as soon as none
// has, and never waits longer than the gate's bound.
import t from 'tap'
import { LinkPriority, MAX_YIELD_MS } from '../../src/peer/link-priority.ts'

/** Whether `promise` has settled once every pending callback and I/O event ran. */
async function settled (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
  return done
}

/** `promise`, or a rejection after `ms` (no test waits without a bound). */
async function within<T> (ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} did not happen within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

t.equal(MAX_YIELD_MS, 2000, 'a file piece waits for records 2 s at most')

t.test('no records moving: a file piece goes at once', async t => {
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  t.equal(gate.busy('p'), false)
  t.equal(await settled(gate.yieldToRecords('p')), true)
  gate.syncBusy('p', false)
  t.equal(gate.busy('p'), false, 'a false without a true does not count below zero')
  gate.syncBusy('p', true)
  t.equal(gate.busy('p'), true, 'and the next true counts')
})

t.test('busy holds a waiter back; idle releases it; other peers are not held', async t => {
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  gate.syncBusy('p', true)
  const waiting = gate.yieldToRecords('p')
  t.equal(await settled(waiting), false, 'held while records move to p')
  t.equal(await settled(gate.yieldToRecords('q')), true, 'a file to another peer goes')
  gate.syncBusy('p', false)
  await within(5000, waiting, 'release on idle')
  t.pass('released when the session went idle')
})

t.test('sessions are counted: idle only once every busy session to the peer is', async t => {
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  gate.syncBusy('p', true)
  gate.syncBusy('p', true)
  const waiting = gate.yieldToRecords('p')
  gate.syncBusy('p', false)
  t.equal(await settled(waiting), false, 'one of two sessions still has records moving')
  t.equal(gate.busy('p'), true)
  gate.syncBusy('p', false)
  await within(5000, waiting, 'release when the last session goes idle')
  t.equal(gate.busy('p'), false)
})

t.test('the wait is bounded: records that never stop do not stop a file', async t => {
  const gate = new LinkPriority({ maxWaitMs: 50 })
  gate.syncBusy('p', true)
  await within(10_000, gate.yieldToRecords('p'), 'release after the bound')
  t.equal(gate.busy('p'), true, 'released although records still move')
  // Every later piece waits the bound again, and is let go again.
  await within(10_000, gate.yieldToRecords('p'), 'the next piece')
  t.pass('each piece waits at most the bound')
})

t.test('a waiter whose signal aborts rejects with its reason', async t => {
  const gate = new LinkPriority({ maxWaitMs: 60_000 })
  gate.syncBusy('p', true)
  const ac = new AbortController()
  const waiting = gate.yieldToRecords('p', ac.signal)
  ac.abort(new Error('transfer stopped'))
  await t.rejects(within(5000, waiting, 'abort'), /transfer stopped/)
  await t.rejects(gate.yieldToRecords('p', ac.signal), /transfer stopped/, 'an aborted signal rejects at once')
  gate.syncBusy('p', false)
})
