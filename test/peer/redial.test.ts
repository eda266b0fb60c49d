// A peer that accepts the connection and closes it (a site that does not
// trust this node) is redialled with backoff, not on every tick; a session
// that catches up (reset) makes the next dial immediate again.
import t from 'tap'
import { Redialer } from '../../src/peer/sync/redial.ts'
import { eventually } from '../helpers/mesh.ts'

t.test('dials that connect but lead nowhere back off like failures', async t => {
  let dials = 0
  const redialer = new Redialer({ minMs: 50, maxMs: 400, tickMs: 5, due: () => ['refusing-peer'], dial: async () => { dials += 1 } })
  redialer.start()
  t.teardown(() => { redialer.stop() })
  await new Promise(resolve => setTimeout(resolve, 1000))
  // Every 5 ms would be up to 200; with backoff (50, 100, 200, 400, 400... ms, ±25%) it is at most 7.
  t.ok(dials >= 1 && dials <= 8, `dialled ${dials} times in a second`)
  const before = dials
  redialer.reset('refusing-peer')
  await eventually(() => dials > before, 10_000, 'a dial soon after reset')
  t.pass('reset dials again without waiting out the backoff')
})

t.test('failed dials back off the same way', async t => {
  let dials = 0
  const redialer = new Redialer({ minMs: 50, maxMs: 400, tickMs: 5, due: () => ['away'], dial: async () => { dials += 1; throw new Error('unreachable') } })
  redialer.start()
  t.teardown(() => { redialer.stop() })
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.ok(dials >= 1 && dials <= 8, `dialled ${dials} times in a second`)
})
