// Why a peer did not sync, in words (issue 10, "Rough edges"): a peer that
// has not approved this node, one that removed it, and an address where
// nothing listens. libp2p reports the first two as an EOF or a bare Event
// ("[object Event]"), the last as a socket code.
import t from 'tap'
import { startTestNode } from '../helpers/node.ts'
import { addPeer, addressOf, eventually } from '../helpers/mesh.ts'
import { dw, dwJson } from '../cli/helpers.ts'
import { dialFailure, refusalMessage } from '../../src/peer/link-failures.ts'

const STRANGER = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'

t.test('dial failures become PEER_UNREACHABLE or PEER_REFUSED with the address', async t => {
  const addr = `/ip4/127.0.0.1/tcp/1/p2p/${STRANGER}`
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
  t.match(dialFailure(refused, addr), { code: 'PEER_UNREACHABLE', message: `unreachable at ${addr} (connection refused: nothing listens there; is the node running?)`, details: { addr, reason: 'ECONNREFUSED' } })
  t.match(dialFailure(Object.assign(new Error('aborted'), { name: 'TimeoutError' }), addr), { code: 'PEER_UNREACHABLE', message: /timed out/ })
  t.match(dialFailure(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }) }), addr), { code: 'PEER_UNREACHABLE', message: /no route to the host/ })
  const event = dialFailure(new Event('close'), addr)
  t.match(event, { code: 'PEER_REFUSED', message: /closed the connection during the handshake; the peer does not trust this node/ })
  t.notMatch(event.message, '[object Event]')
  t.match(dialFailure(Object.assign(new Error('Unexpected EOF'), { name: 'UnexpectedEOFError' }), addr), { code: 'PEER_REFUSED' })
  t.match(refusalMessage({ addr, at: 0 }, 'SELF', false), /has not approved this node yet \(on that node: dw peer pending, then dw peer approve SELF\)/)
  t.match(refusalMessage({ addr, at: 0 }, 'SELF', true), /no longer trusts this node/)
})

t.test('dw sync and dw peer ls say why a peer refused or failed', async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  const at = ['--data', b.dataDir]
  await addPeer(b, addressOf(a))

  // B trusts A; A has never heard of B, so its gater closes B's connection after the handshake.
  const run = await dw(['sync', '--timeout', '3', ...at])
  t.equal(run.code, 1, 'a refusing peer fails the sync')
  t.notMatch(run.stdout + run.stderr, '[object', 'no object dump')
  t.match(run.stdout, /failed/)
  t.match(run.stdout, `refused: ${addressOf(a)} closed our connection right after the handshake; the peer has not approved this node yet`)
  t.match(run.stdout, `dw peer approve ${b.node.peerId}`)
  const json = await dw(['sync', '--timeout', '3', '--json', ...at])
  t.match(JSON.parse(json.stdout).results, [{ peerId: a.node.peerId, ok: false, error: /has not approved this node yet/ }])

  let peers: any = await dwJson(['peer', 'ls', ...at])
  await eventually(async () => {
    peers = await dwJson(['peer', 'ls', ...at])
    return /has not approved this node yet/.test(peers[0]?.lastError ?? '')
  }, 60_000, 'dw peer ls --json showing the refusal')
  t.match(peers, [{ peerId: a.node.peerId, connected: false, lastError: /has not approved this node yet/ }])
  // B keeps redialling A, and each attempt rewrites the last error (on a
  // loaded machine one may time out instead): the table is read until it
  // shows the refusal, within a bound.
  let table = await dw(['peer', 'ls', ...at])
  t.match(table.stdout, /LAST ERROR/)
  await eventually(async () => {
    table = await dw(['peer', 'ls', ...at])
    return /refused: .* has not approved this node yet/.test(table.stdout)
  }, 60_000, 'dw peer ls showing the refusal')
  t.match(table.stdout, /refused: .* has not approved this node yet/)
  t.ok(a.node.book.pending().some(p => p.peerId === b.node.peerId), 'A lists B as pending')

  // Approved: the same command succeeds and the error is gone.
  await a.node.book.approve(b.node.peerId, addressOf(b))
  a.node.sync.peerAdded(b.node.peerId)
  await eventually(async () => (await dwJson(['sync', '--timeout', '5', ...at]).catch(() => ({ ok: false }))).ok === true, 30_000, 'sync after approval')
  t.notOk((await dwJson(['peer', 'ls', ...at]))[0].lastError, 'no error once synced')

  // A removes B: B synced with it before, so A no longer trusts it.
  const removed = await a.node.api.inject({ method: 'DELETE', url: `/peers/${b.node.peerId}`, headers: a.admin })
  t.equal(removed.statusCode, 204)
  await eventually(async () => {
    const again = await dw(['sync', '--timeout', '3', '--json', ...at])
    return again.code === 1 && /no longer trusts this node/.test(again.stdout)
  }, 30_000, 'sync says the peer removed this node')
  const removedText = /refused: .* no longer trusts this node \(it removed it from its peer book, or revoked it\)/
  let afterRemoval: any
  await eventually(async () => {
    afterRemoval = await dwJson(['peer', 'ls', ...at])
    return removedText.test(afterRemoval[0]?.lastError ?? '')
  }, 60_000, 'dw peer ls showing the removal')
  t.match(afterRemoval, [{ lastError: removedText }])

  // Nothing listens at the address: unreachable, with the address tried.
  const dead = `/ip4/127.0.0.1/tcp/1/p2p/${STRANGER}`
  await addPeer(b, dead)
  const unreachable = await dwJson<{ results: Array<{ peerId: string, error?: string }> }>(['sync', '--timeout', '3', ...at]).catch(() => undefined)
  t.equal(unreachable, undefined, 'dw sync --json exits 1 when a peer fails')
  const res = await b.node.api.inject({ method: 'POST', url: '/sync/now', headers: b.admin, payload: { timeoutMs: 3000 } })
  t.match(res.json().results.find((r: { peerId: string }) => r.peerId === STRANGER), { ok: false, error: `unreachable at ${dead} (connection refused: nothing listens there; is the node running?)` })
  const listed = (await dwJson(['peer', 'ls', ...at])).find((p: { peerId: string }) => p.peerId === STRANGER)
  t.match(listed, { lastError: `unreachable at ${dead} (connection refused: nothing listens there; is the node running?)` }, 'peer ls: once, in words')
})
