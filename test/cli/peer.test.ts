import { multiaddr } from '@multiformats/multiaddr'
import t from 'tap'
import { startTestPeer } from '../peer/helpers.ts'
import { dw, dwJson, initialised, started } from './helpers.ts'

// A valid peer id that no test node has: the peer book accepts it, nothing answers at its address.
const STRANGER = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'

void t.test('peer, sync and audit against a running node', async (t) => {
  const data = await initialised(t, 'alpha')
  const node = await started(t, data)
  const at = ['--data', data]

  t.test('peer add refuses bad addresses with a clear message', async (t) => {
    const cases: Array<[string, string]> = [
      ['/ip4/10.1.2.3/tcp/4001', 'does not end in /p2p/<peerId>'],
      [`/ip4/10.1.2.3/tcp/4001 /p2p/${STRANGER}`, 'contains spaces'],
      [STRANGER, 'is a bare peer id; give the full address'],
      [`/ip4/127.0.0.1/tcp/4001/p2p/${node.peerId}`, 'this node\'s own peer id']
    ]
    for (const [addr, message] of cases) {
      const run = await dw(['peer', 'add', addr, ...at])
      t.equal(run.code, 1, `refused: ${addr}`)
      t.match(run.stderr, message)
      t.match(run.stderr, 'INVALID_INPUT')
      t.equal(run.stdout, '')
    }
    t.same(await dwJson(['peer', 'ls', ...at]), [], 'nothing was added')
  })

  t.test('sync with no peers says so and succeeds', async (t) => {
    const run = await dw(['sync', ...at])
    t.equal(run.code, 0, run.stderr)
    t.match(run.stdout, 'no peers to sync with; add one with: dw peer add')
    t.same(await dwJson(['sync', ...at]), { ok: true, results: [] })
    t.same(await dwJson(['sync', '--full', ...at]), { ok: true, results: [] }, 'the repair pass is accepted too')
    const bad = await dw(['sync', '--timeout', 'soon', ...at])
    t.not(bad.code, 0)
    t.match(bad.stderr, '--timeout wants seconds between 0.1 and 600')
  })

  t.test('add, ls, rm round trip, recorded in the audit log', async (t) => {
    const addr = `/ip4/127.0.0.1/tcp/9/p2p/${STRANGER}`
    const added = await dwJson(['peer', 'add', addr, '--name', 'beta', ...at])
    t.match(added, { peerId: STRANGER, name: 'beta', addrs: [addr] })

    const peers = await dwJson(['peer', 'ls', ...at])
    t.equal(peers.length, 1)
    t.match(peers[0], { peerId: STRANGER, name: 'beta', addrs: [addr], connected: false, bytesIn: 0, bytesOut: 0 })
    const table = await dw(['peer', 'ls', ...at])
    t.match(table.stdout, /^NAME\s+PEER ID\s+ADDRESSES\s+CONNECTED\s+LAST SYNC\s+TO PULL\s+TO PUSH\s+IN\s+OUT\s+LINK\s+THROTTLED\s+LAST ERROR/)
    t.match(table.stdout, new RegExp(`beta\\s+${STRANGER}\\s+${addr}\\s+no\\s+never`))
    const status = await dw(['status', ...at])
    t.match(status.stdout, new RegExp(`beta\\s+${STRANGER}\\s+no\\s+never`), 'status shows the peer too')

    const unreachable = await dw(['sync', '--timeout', '2', ...at])
    t.equal(unreachable.code, 1, 'a peer that cannot be reached fails the sync')
    t.match(unreachable.stdout, /beta\s+failed\s+0\s+no/)
    t.match(unreachable.stderr, '1 of 1 peers did not sync: beta')

    const removed = await dw(['peer', 'rm', STRANGER, ...at])
    t.equal(removed.code, 0, removed.stderr)
    t.match(removed.stdout, `removed peer ${STRANGER}`)
    t.same(await dwJson(['peer', 'ls', ...at]), [])
    const again = await dw(['peer', 'rm', STRANGER, ...at])
    t.equal(again.code, 1)
    t.match(again.stderr, 'is not in the peer book')

    const audit = await dwJson(['audit', '--type', 'peer', ...at])
    t.match(audit.map((e: any) => e.type), ['peer.remove', 'peer.add'], 'newest first')
    const text = await dw(['audit', '--peer', STRANGER, '--limit', '1', ...at])
    t.match(text.stdout, /^TIME\s+TYPE\s+ACTOR\s+PEER\s+OUTCOME\s+DETAILS/)
    t.match(text.stdout, new RegExp(`peer\\.remove\\s+admin\\s+${STRANGER}\\s+ok`))
    t.notMatch(text.stdout, 'peer.add', '--limit is honoured')
    // The address alone is longer than the details cell.
    const cut = await dw(['audit', '--type', 'peer.add', '--limit', '1', ...at])
    t.match(cut.stdout, '...', 'long details are cut to their cell')
    t.notMatch(cut.stdout, 'name=beta')
    const wide = await dw(['audit', '--type', 'peer.add', '--limit', '1', '--wide', ...at])
    t.match(wide.stdout, `addrs=["${addr}"] name=beta`, '--wide shows them whole')
  })

  // Unknown peers, API refusals and the audit entry: test/integration/link-profiles.test.ts.
  t.test('peer set: a link profile shown by peer ls, bad input refused before anything changes', async (t) => {
    const addr = `/ip4/127.0.0.1/tcp/9/p2p/${STRANGER}`
    await dwJson(['peer', 'add', addr, '--name', 'gamma', ...at])
    t.teardown(async () => { await dw(['peer', 'rm', STRANGER, ...at]) })

    const set = await dw(['peer', 'set', STRANGER, '--max-rate', '256kbit', '--files-window', '22:00-6:00', '--metered', ...at])
    t.equal(set.code, 0, set.stderr)
    t.equal(set.stdout, 'peer gamma: 256 kbit/s, files 22:00-06:00, metered\n')
    const table = await dw(['peer', 'ls', ...at])
    t.match(table.stdout, new RegExp(`gamma\\s+${STRANGER}\\s.*\\s256 kbit/s, files 22:00-06:00, metered\\s`))

    const refused: Array<[string[], string]> = [
      [['--max-rate', '64kb'], 'ambiguous: write 64kbit for bits or 64kB for bytes per second'],
      [['--files-window', '25:00-01:00'], 'hours run 0-23'],
      [[], 'nothing to set: give --max-rate, --files-window, --metered or --no-metered']
    ]
    for (const [args, message] of refused) {
      const run = await dw(['peer', 'set', STRANGER, ...args, ...at])
      t.equal(run.code, 1, args.join(' '))
      t.match(run.stderr, message)
    }
    const cleared = await dwJson(['peer', 'set', STRANGER, '--max-rate', 'none', '--no-metered', ...at])
    t.same(cleared.link, { filesWindow: '22:00-06:00' }, 'only what was cleared changed; refused runs changed nothing')
  })

  t.test('pending and approve', async (t) => {
    t.same(await dwJson(['peer', 'pending', ...at]), [])
    t.match((await dw(['peer', 'pending', ...at])).stdout, '(no pending requests)')
    const run = await dw(['peer', 'approve', STRANGER, ...at])
    t.equal(run.code, 1)
    t.match(run.stderr, `no pending request from peer ${STRANGER}`)
  })

  t.test('a stranger that knocks is listed as pending; dismiss forgets it, admins only, audited', async (t) => {
    const status = await dwJson(['status', ...at])
    const nodeAddr = (status.sync.addresses as string[]).find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))
    if (nodeAddr === undefined) throw new Error(`the node has no loopback address: ${JSON.stringify(status.sync.addresses)}`)
    // A bare libp2p node that trusts ours: ours refuses it after the handshake and lists it.
    const stranger = await startTestPeer(t)
    await stranger.book.add(nodeAddr)
    await stranger.node.dial(multiaddr(nodeAddr)).catch(() => {})
    const deadline = Date.now() + 10_000
    let listed: any[] = []
    while (Date.now() < deadline) {
      listed = await dwJson(['peer', 'pending', ...at])
      if (listed.some(p => p.peerId === stranger.peerId)) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.match(listed, [{ peerId: stranger.peerId, addr: new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${stranger.peerId}$`) }], 'listed as pending')
    t.match((await dw(['peer', 'pending', ...at])).stdout, new RegExp(`^PEER ID\\s+FROM\\s+FIRST SEEN\\s+LAST SEEN\\s+ATTEMPTS\\n${stranger.peerId}\\s`))

    const member = await dw(['user', 'add', 'mira', '--role', 'member', ...at], { env: { DW_USER_PASSWORD: 'mira-member-pass-1' } })
    t.equal(member.code, 0, member.stderr)
    const refused = await dw(['peer', 'dismiss', stranger.peerId, '--user', 'mira', ...at], { env: { DW_PASSWORD: 'mira-member-pass-1' } })
    t.equal(refused.code, 1, 'a member may not dismiss')
    t.match(refused.stderr, 'FORBIDDEN')
    t.equal((await dwJson(['peer', 'pending', ...at])).length, 1, 'still pending')

    const dismissed = await dw(['peer', 'dismiss', stranger.peerId, ...at])
    t.equal(dismissed.code, 0, dismissed.stderr)
    t.match(dismissed.stdout, `dismissed the pending request from peer ${stranger.peerId}`)
    t.same(await dwJson(['peer', 'pending', ...at]), [], 'gone from the list')
    t.notOk((await dwJson(['peer', 'ls', ...at])).some((p: any) => p.peerId === stranger.peerId), 'and not trusted')

    const again = await dw(['peer', 'dismiss', stranger.peerId, ...at])
    t.equal(again.code, 1, 'an unknown id is refused')
    t.match(again.stderr, `no pending request from peer ${stranger.peerId} (NOT_FOUND)`)
    const bad = await dw(['peer', 'dismiss', 'not-a-peer-id', ...at])
    t.equal(bad.code, 1)
    t.match(bad.stderr, 'INVALID_INPUT')

    const audit = await dwJson(['audit', '--type', 'peer.dismiss', ...at])
    t.match(audit, [{ type: 'peer.dismiss', actor: String, peer: stranger.peerId }], 'audited once, for the dismiss that happened')
  })
})
