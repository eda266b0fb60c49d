// Two and three real nodes in one process (LevelDB, libp2p over TCP on
// 127.0.0.1, HTTP API), linked through the API as an admin would.
import t from 'tap'
import { startTestNode } from '../helpers/node.ts'
import { addressOf, converged, eventually, link } from '../helpers/mesh.ts'

t.test('two nodes converge, live pushes arrive, merge rules hold across the network', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const made = []
  for (let i = 0; i < 20; i++) made.push((await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: `a${i}`, tags: ['x'] } })).json())
  // The sparsest records there are, and a deleted one.
  const bare = (await a.node.api.inject({ method: 'POST', url: '/models', headers: a.admin, payload: { name: 'm' } })).json()
  const gone = (await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'gone' } })).json()
  await a.node.api.inject({ method: 'DELETE', url: `/datasets/${gone.id}`, headers: a.admin })
  await link(a, b)
  await eventually(async () => await converged([a, b]), 15_000, 'initial convergence')
  t.pass('initial sync converged')
  t.same((await b.node.api.inject({ url: `/models/${bare.id}`, headers: b.admin })).json().metrics, {}, 'a bare record arrives whole')
  t.equal((await b.node.api.inject({ url: `/datasets/${gone.id}`, headers: b.admin })).statusCode, 410, 'a deleted record arrives deleted')

  // A live push: the edit travels over the pull session B already has open
  // with A (nothing polls; a session ends only on an error or a hang-up, and
  // B audits each one as it ends). Asserted by that, not by how fast it is.
  const target = made[0]
  const sessionsEnded = async (): Promise<number> => (await b.node.api.inject({ url: '/audit?type=sync.session&limit=1000', headers: b.admin })).json().items
    .filter((e: any) => e.peer === a.node.peerId).length
  const endedBefore = await sessionsEnded()
  const started = Date.now()
  await a.node.api.inject({ method: 'PATCH', url: `/datasets/${target.id}`, headers: a.admin, payload: { description: 'live edit' } })
  await eventually(async () => (await b.node.api.inject({ url: `/datasets/${target.id}`, headers: b.admin })).json().description === 'live edit', 60_000, 'live push')
  t.comment(`live change visible on the peer after ${Date.now() - started} ms`)
  t.equal(await sessionsEnded(), endedBefore, 'the live change came over the session already open, not a new pull')

  const status = (await a.node.api.inject({ url: '/sync/status', headers: a.admin })).json()
  t.equal(status.peers.length, 1)
  t.equal(status.peers[0].connected, true)
  t.ok(status.peers[0].lastSyncAt, 'last sync reported')
  t.ok(status.peers[0].bytesIn > 0 || status.peers[0].bytesOut > 0, 'bytes counted')

  const now = (await a.node.api.inject({ method: 'POST', url: '/sync/now', headers: a.admin, payload: { timeoutMs: 10_000 } })).json()
  t.equal(now.ok, true, JSON.stringify(now))

  const audit = (await a.node.api.inject({ url: '/audit?type=sync', headers: a.admin })).json()
  t.ok(audit.items.some((e: any) => e.type === 'sync.session'), 'sync sessions are audited')
  const admin = (await a.node.api.inject({ url: '/audit?type=peer', headers: a.admin })).json()
  t.ok(admin.items.some((e: any) => e.type === 'peer.add'), 'peer add audited')
})

t.test('a removed peer is cut off at once; an unknown peer is refused and listed as pending', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const stranger = await startTestNode(t)
  await link(a, b)
  await eventually(async () => await converged([a, b]), 15_000, 'link')
  // The stranger trusts a, but a does not know it.
  await stranger.node.api.inject({ method: 'POST', url: '/peers', headers: stranger.admin, payload: { multiaddr: addressOf(a) } })
  await eventually(async () => (await a.node.api.inject({ url: '/peers/pending', headers: a.admin })).json().items.some((p: any) => p.peerId === stranger.node.peerId), 10_000, 'pending request')
  t.pass('stranger listed as pending')
  await stranger.node.api.inject({ method: 'POST', url: '/datasets', headers: stranger.admin, payload: { name: 'sneaky' } })
  t.notOk((await a.node.api.inject({ url: '/datasets?q=sneaky', headers: a.admin })).json().items.length, 'nothing from a stranger')

  const removed = await a.node.api.inject({ method: 'DELETE', url: `/peers/${b.node.peerId}`, headers: a.admin })
  t.equal(removed.statusCode, 204)
  t.equal(a.node.libp2p.getConnections().filter(c => c.remotePeer.toString() === b.node.peerId).length, 0, 'connection closed at once')
  const after = (await b.node.api.inject({ method: 'POST', url: '/datasets', headers: b.admin, payload: { name: 'after removal' } })).json()
  await new Promise(resolve => setTimeout(resolve, 1500))
  t.equal((await a.node.api.inject({ url: `/datasets/${after.id}`, headers: a.admin })).statusCode, 404, 'b\'s new data never reaches a')
})

t.test('three nodes in a line: changes hop A -> B -> C and back', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const c = await startTestNode(t)
  await link(a, b)
  await link(b, c)
  const fromA = (await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'from a' } })).json()
  const fromC = (await c.node.api.inject({ method: 'POST', url: '/datasets', headers: c.admin, payload: { name: 'from c' } })).json()
  await eventually(async () => (await c.node.api.inject({ url: `/datasets/${fromA.id}`, headers: c.admin })).statusCode === 200, 15_000, 'a -> c')
  await eventually(async () => (await a.node.api.inject({ url: `/datasets/${fromC.id}`, headers: a.admin })).statusCode === 200, 15_000, 'c -> a')
  await eventually(async () => await converged([a, b, c]), 15_000, 'three-way convergence')
  t.pass('converged through the middle node')
})
