import { generateKeyPair } from '@libp2p/crypto/keys'
import t from 'tap'
import { peerIdOf } from '../../src/peer/identity.ts'
import { createPeerNode } from '../../src/peer/libp2p.ts'

void t.test('a node runs TCP with identify and ping only, under its own identity', async (t) => {
  const key = await generateKeyPair('Ed25519')
  const node = await createPeerNode({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  t.teardown(async () => { await node.stop() })
  t.equal(node.status, 'started')
  t.equal(node.peerId.toString(), peerIdOf(key))
  t.same(node.getProtocols().sort(), ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0'], 'no DHT, relay or other protocols')
  t.same(Object.keys(node.services).sort(), ['identify', 'ping'])
  const addrs = node.getMultiaddrs().map(String)
  t.equal(addrs.length, 1)
  t.match(addrs[0], new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peerIdOf(key)}$`))
})

void t.test('listen problems are CONFIG_INVALID and leave nothing running', async (t) => {
  const first = await createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], gater: {} })
  t.teardown(async () => { await first.stop() })
  const taken = first.getMultiaddrs()[0]?.decapsulateCode(421).toString() ?? ''

  await t.rejects(createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: [taken], gater: {} }), { code: 'CONFIG_INVALID', message: /EADDRINUSE/ })
  await t.rejects(createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcpp/1'], gater: {} }), { code: 'CONFIG_INVALID', message: /not a valid multiaddr/ })
  await t.rejects(createPeerNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/udp/1/quic-v1'], gater: {} }), { code: 'CONFIG_INVALID', message: /quic-v1/ })
})
