// The repair pass (`POST /sync/now {full: true}`, `dw sync --full`): a
// record lost from a node's disk after it had synced does not come back by
// ordinary sync, whose checkpoint lies past it; a full pass brings it back,
// and moves nothing for records already equal.
import t from 'tap'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'
import { loseRecord } from '../../scripts/sim/tamper.ts'

async function syncNow (n: TestNode, full: boolean): Promise<{ ok: boolean, results: Array<{ received: number }> }> {
  const res = await n.node.api.inject({ method: 'POST', url: '/sync/now', headers: n.admin, payload: { timeoutMs: 15_000, full } })
  if (res.statusCode !== 200) throw new Error(`sync/now: ${res.statusCode} ${res.body}`)
  return res.json()
}

t.test('a record lost from disk comes back with a full sync, not an ordinary one', async t => {
  const a = await startTestNode(t)
  const first = await startTestNode(t)
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: `kept ${i}`, tags: ['repair'] } })).json().id)
  await link(a, first)
  const lost = ids[2] as string
  const original = (await a.node.api.inject({ url: `/datasets/${lost}`, headers: a.admin })).json()
  // B holds everything, and its checkpoint on A is at A's head.
  await eventually(async () => {
    const peers = (await first.node.api.inject({ url: '/sync/status', headers: first.admin })).json().peers as Array<{ behindPeer: number | null }>
    return peers[0]?.behindPeer === 0 && (await first.node.api.inject({ url: `/datasets/${ids[4] as string}`, headers: first.admin })).statusCode === 200
  }, 15_000, 'B caught up with A')

  // B loses one record from its disk while stopped, then starts again.
  await first.node.stop()
  t.equal((await loseRecord(first.dataDir, `dataset/${lost}`)).removed, true, 'the record is gone from B\'s LevelDB')
  const b = await startTestNode(t, { dataDir: first.dataDir })
  t.equal((await b.node.api.inject({ url: `/datasets/${lost}`, headers: b.admin })).statusCode, 404, 'B no longer has it')

  const ordinary = await syncNow(b, false)
  t.equal(ordinary.ok, true, `an ordinary sync succeeds... ${JSON.stringify(ordinary)}`)
  t.equal((await b.node.api.inject({ url: `/datasets/${lost}`, headers: b.admin })).statusCode, 404, '...and does not bring the record back: B\'s checkpoint lies past it')

  const full = await syncNow(b, true)
  t.equal(full.ok, true, 'the full sync succeeds')
  t.equal(full.results[0]?.received, 1, 'it moved exactly the lost record, nothing for the four records already equal')
  const back = await b.node.api.inject({ url: `/datasets/${lost}`, headers: b.admin })
  t.equal(back.statusCode, 200, 'the record is back')
  t.same(back.json(), original, '...exactly as A has it')

  // The pass did not move B's checkpoint back: a restart does not re-read A's feed.
  const again = await syncNow(b, false)
  t.equal(again.results[0]?.received, 0, 'an ordinary sync after the repair receives nothing')
})

t.test('a full sync is refused with a clear error when full is not a boolean', async t => {
  const n = await startTestNode(t)
  const res = await n.node.api.inject({ method: 'POST', url: '/sync/now', headers: n.admin, payload: { full: 'yes' } })
  t.equal(res.statusCode, 400)
  t.match(res.json().error.message, /full/)
})

t.test('after a restart with nothing new on either side, sync now reports success', async t => {
  const a = await startTestNode(t)
  const first = await startTestNode(t)
  await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'one' } })
  await first.node.api.inject({ method: 'POST', url: '/datasets', headers: first.admin, payload: { name: 'two' } })
  await link(a, first)
  t.equal((await syncNow(first, false)).ok, true, 'synced before the restart')
  await first.node.stop()
  const b = await startTestNode(t, { dataDir: first.dataDir })
  // Before the fix the peer, caught up already, never acknowledged anything, and this waited out its timeout.
  const res = await syncNow(b, false)
  t.equal(res.ok, true, `the peer confirms it is caught up (${JSON.stringify(res.results)})`)
})
