// Both protocols pass one trust gate: a peer that is no longer trusted but
// still holds an open connection gets its stream reset, audited with the
// stable code PEER_NOT_ALLOWED; outbound streams to it are refused too.
import t from 'tap'
import { multiaddr } from '@multiformats/multiaddr'
import { startTestNode } from '../helpers/node.ts'
import { addressOf, eventually } from '../helpers/mesh.ts'
import { startTestPeer } from './helpers.ts'
import { FramedStream } from '../../src/peer/framed-stream.ts'
import { SYNC_PROTOCOL } from '../../src/peer/sync/messages.ts'
import { BLOB_PROTOCOL } from '../../src/blobs/transfer/messages.ts'

t.test('a stream from a peer that is no longer trusted is refused and audited as PEER_NOT_ALLOWED', async t => {
  const a = await startTestNode(t)
  const other = await startTestPeer(t)
  await other.book.add(addressOf(a))
  const audited = async (): Promise<boolean> => {
    const { items } = (await a.node.api.inject({ url: '/audit?type=sync.violation&limit=50', headers: a.admin })).json()
    return items.some((e: any) => e.peer === other.peerId && e.details?.code === 'PEER_NOT_ALLOWED')
  }
  // Trusted when it connects, untrusted (the book, not the route, so nothing
  // hangs up) before it opens its streams. A connection that closes
  // meanwhile (a sync session giving up on a peer that speaks no sync) is
  // simply tried again.
  for (let attempt = 0; attempt < 5 && !await audited(); attempt++) {
    await a.node.book.add(other.addr)
    const conn = await other.node.dial(multiaddr(addressOf(a))).catch(() => undefined)
    await a.node.book.remove(other.peerId)
    if (conn === undefined) continue
    for (const protocol of [SYNC_PROTOCOL, BLOB_PROTOCOL]) {
      const stream = await conn.newStream(protocol).catch(() => undefined)
      if (stream === undefined) continue
      const framed = new FramedStream(stream)
      await framed.send({ t: 'hello', v: 2, epoch: '', since: 0, live: false }).catch(() => {})
      await Promise.race([
        (async () => { try { while (!(await framed.read()).done); } catch {} })(),
        new Promise(resolve => setTimeout(resolve, 5000))
      ])
    }
    await eventually(audited, 5_000, 'PEER_NOT_ALLOWED audited').catch(() => {})
  }
  t.ok(await audited(), 'refused and audited')

  await t.rejects(a.node.host.open(other.peerId, SYNC_PROTOCOL, { maxMessageSize: 1024 }), { code: 'PEER_NOT_ALLOWED' }, 'no outbound stream to an untrusted peer')
})
