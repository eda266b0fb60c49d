// A trusted peer that breaks the sync protocol loses its stream, the event
// is audited, and the node keeps serving honest peers with its data intact.
import t from 'tap'
import { multiaddr } from '@multiformats/multiaddr'
import { encode } from 'cborg'
import { startTestNode } from '../helpers/node.ts'
import { addressOf, converged, eventually, link } from '../helpers/mesh.ts'
import { startTestPeer } from '../peer/helpers.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { SYNC_PROTOCOL } from '../../src/peer/sync/messages.ts'

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 128) { out.push((n & 127) | 128); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

t.test('malformed, oversized and out-of-protocol messages reset only that stream', async t => {
  const a = await startTestNode(t)
  const honest = await startTestNode(t)
  const evil = await startTestPeer(t)
  await link(a, honest)
  await a.node.api.inject({ method: 'POST', url: '/peers', headers: a.admin, payload: { multiaddr: evil.addr, name: 'evil' } })
  await evil.book.add(addressOf(a))
  const conn = await evil.node.dial(multiaddr(addressOf(a)))

  const attacks: Array<(s: FramedStream) => Promise<void>> = [
    async s => { await s.send({ t: 'nonsense' }) },
    async s => { await s.send({ t: 'hello', v: 99, epoch: '', since: 0, live: false }) },
    async s => { await s.send({ t: 'want', batch: 0, items: [] }) },
    async s => { await s.send({ t: 'hello', v: 1, epoch: '', since: 0, live: true }); await s.send({ t: 'want', batch: 10_000, items: [] }) },
    async s => { await s.send({ t: 'hello', v: 1, epoch: '', since: 0, live: true }); await s.send({ t: 'want', batch: 0, items: [['dataset/../../etc', []]] }) },
    async s => { s.stream.send(varint(1024 ** 3)) },
    async s => { s.stream.send(Uint8Array.from([5, 0xff, 0xff, 0xff, 0xff, 0xff])) },
    async s => { const body = encode({ t: 'hello' }); s.stream.send(varint(body.length + 10)); s.stream.send(body); await s.close() }
  ]
  for (const attack of attacks) {
    const stream = await conn.newStream(SYNC_PROTOCOL)
    const framed = new FramedStream(stream)
    await attack(framed).catch(() => {})
    // The node answers a violation by resetting the stream: reading ends in an error or EOF.
    await Promise.race([
      (async () => { try { while (!(await framed.read()).done); } catch {} })(),
      new Promise(resolve => setTimeout(resolve, 5000))
    ])
  }
  await eventually(async () => {
    const audit = (await a.node.api.inject({ url: '/audit?type=sync.violation&limit=100', headers: a.admin })).json()
    return audit.items.filter((e: any) => e.peer === evil.peerId).length >= 5
  }, 10_000, 'violations audited')
  t.pass('violations audited')

  const made = (await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'still serving' } })).json()
  await eventually(async () => (await honest.node.api.inject({ url: `/datasets/${made.id}`, headers: honest.admin })).statusCode === 200, 10_000, 'honest peer served')
  await eventually(async () => await converged([a, honest]), 10_000, 'convergence')
  t.equal((await a.node.api.inject({ url: '/healthz' })).statusCode, 200, 'node up')
})
