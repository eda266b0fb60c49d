// Wire features are negotiated per session (issue 11): with `sig8` each
// signature travels with 8 bytes of its change's hash instead of 32, and
// the receiver, which computes every hash itself, still verifies every
// change. A peer of the previous wire version offers and reads no feature,
// and its sessions keep the full entries.
import t from 'tap'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { SIG_ENTRY_FULL, SIG_ENTRY_SHORT, type Feature } from '../../src/peer/sync/messages.ts'
import { rosterKey } from '../../src/trust/roster.ts'
import type { MessageStream } from '../../src/message-stream.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { headsOf, trustNode, type TrustNode } from '../helpers/trust-fixture.ts'

async function founded (t: any): Promise<TrustNode & { roster: string }> {
  const F = await trustNode(t, 'F')
  const { meshId } = await F.core.nodes.found('F')
  for (let i = 0; i < 5; i++) await F.core.records.create(F.admin, 'dataset', { name: `survey ${i}`, tags: ['ocean'] })
  return Object.assign(F, { roster: rosterKey(meshId) })
}

/** Every message a side sends, as sent. */
function watched (stream: MessageStream): MessageStream & { sent: any[] } {
  const sent: any[] = []
  return { ...stream, sent, send: async (m: unknown) => { sent.push(m); await stream.send(m) } }
}

/** One whole pull of `to` from `from`, each side offering the features given (default: all). */
async function pull (from: TrustNode, to: TrustNode, options: { serve?: Feature[], pull?: Feature[], tamper?: (m: any) => void } = {}): Promise<{ serverSent: any[], received: number, refused: number }> {
  const [client, server] = streamPair()
  const watchedServer = watched(server)
  const tampering: MessageStream = options.tamper === undefined
    ? watchedServer
    : { ...watchedServer, send: async (m: any) => { options.tamper?.(m); await watchedServer.send(m) } }
  const serving = serveSync(tampering, from.core.docs, { compression: false, features: options.serve })
  const stats = await pullSync(client, to.core.docs, { epoch: '', through: 0 }, { live: false, saveCheckpoint: async () => {}, compression: false, features: options.pull })
  await serving
  return { serverSent: watchedServer.sent, received: stats.recordsReceived, refused: stats.refused }
}

function sigEntries (sent: any[]): number[] {
  return sent.filter(m => m.t === 'docs').flatMap(m => m.items.map((item: [string, Uint8Array, Uint8Array]) => item[2].length))
}

t.test('sig8: signatures travel with a hash prefix, and every change is still verified', async t => {
  const F = await founded(t)
  const J = await trustNode(t, 'J')
  const { serverSent, received, refused } = await pull(F, J)
  t.same(serverSent[0].f, ['sig8', 'skip', 'hbin', 'push'], 'the welcome names the features')
  const offeredHeads = serverSent.filter(m => m.t === 'offer').flatMap(m => m.items.flatMap((item: [string, unknown[]]) => item[1]))
  t.ok(offeredHeads.length >= 6 && offeredHeads.every(h => h instanceof Uint8Array && h.length === 32), 'hbin: offered heads are 32 bytes each')
  const lengths = sigEntries(serverSent)
  t.ok(lengths.length >= 6 && lengths.every(n => n > 0 && n % SIG_ENTRY_SHORT === 0) && lengths.some(n => n % SIG_ENTRY_FULL !== 0), '72-byte entries')
  t.equal(refused, 0)
  t.ok(received >= 6)
  t.same(await headsOf(J), await headsOf(F), 'everything admitted')
})

t.test('sig8: a signature under another prefix does not verify its change', async t => {
  const F = await founded(t)
  const J = await trustNode(t, 'J')
  const roster = F.roster
  const { refused } = await pull(F, J, {
    // Flip a bit of every prefix, except the roster's (J must learn the mesh to judge the rest).
    tamper: m => { if (m.t === 'docs') for (const item of m.items) if (item[0] !== roster) for (let at = 0; at < item[2].length; at += SIG_ENTRY_SHORT) item[2][at] ^= 1 }
  })
  t.ok(refused >= 5, 'the datasets are refused')
  t.notSame(await headsOf(J), await headsOf(F))
})

t.test('peers of the previous wire version: full entries either way round', async t => {
  const F = await founded(t)
  // An older puller offers no feature.
  const J = await trustNode(t, 'J')
  const oldPuller = await pull(F, J, { pull: [] })
  t.notOk(oldPuller.serverSent[0].f, 'no feature in the welcome')
  const oldHeads = oldPuller.serverSent.filter(m => m.t === 'offer').flatMap(m => m.items.flatMap((item: [string, unknown[]]) => item[1]))
  t.ok(oldHeads.length >= 6 && oldHeads.every(h => typeof h === 'string' && h.length === 64), 'heads in hex')
  const lengths = sigEntries(oldPuller.serverSent)
  t.ok(lengths.every(n => n % SIG_ENTRY_FULL === 0) && lengths.some(n => n % SIG_ENTRY_SHORT !== 0), '96-byte entries')
  t.equal(oldPuller.refused, 0)
  t.same(await headsOf(J), await headsOf(F))
  // An older server ignores hello.f.
  const K = await trustNode(t, 'K')
  const oldServer = await pull(F, K, { serve: [] })
  t.notOk(oldServer.serverSent[0].f)
  t.equal(oldServer.refused, 0)
  t.same(await headsOf(K), await headsOf(F))
})
