// A trusted peer serves a document built to explode when loaded (16 KB
// that load into gigabytes). The victim quarantines it without loading it
// in its own thread, keeps serving reads and writes, says so in /readyz,
// audits the peer, never relays the document to a site that peers only
// with it, and after a restart knows the same bytes again at once.
import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { startTestNode, type TestNode } from '../helpers/node.ts'
import { addressOf, eventually, link } from '../helpers/mesh.ts'
import { startAttacker } from '../helpers/attacker.ts'
import { newId } from '../../src/crdt/keys.ts'

const POISON = new URL('../fixtures/poisoned-document.bin', import.meta.url)
const GiB = 1024 ** 3

async function api (n: TestNode, method: string, url: string, payload?: object): Promise<{ status: number, body: any }> {
  const res = await n.node.api.inject({ method: method as 'GET', url, headers: n.admin, ...(payload !== undefined ? { payload } : {}) })
  return { status: res.statusCode, body: res.body === '' ? undefined : res.json() }
}

/** The node still does its job: a record is created and read back, and /readyz says ready. */
async function serves (t: Test, n: TestNode, name: string): Promise<string> {
  const made = await api(n, 'POST', '/datasets', { name })
  t.equal(made.status, 201, `${name}: created`)
  t.equal((await api(n, 'GET', `/datasets/${made.body.id as string}`)).body?.name, name, `${name}: read back`)
  const ready = await n.node.api.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, `${name}: ready`)
  return made.body.id
}

t.test('a poisoned document is quarantined on arrival, directly and through a relay, and again after a restart', async t => {
  let peakRss = 0
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()) }, 20)
  t.teardown(() => { clearInterval(sampler) })

  const victim = await startTestNode(t)
  const second = await startTestNode(t)
  await link(victim, second)
  const x = await startAttacker(t)
  const key = `dataset/${newId()}`
  await x.attack('plantRaw', { key, bytes: (await readFile(POISON)).toString('base64') })
  t.equal((await api(victim, 'POST', '/peers', { multiaddr: x.addr, role: 'contributor' })).status, 201)
  await x.call('addPeer', { addr: addressOf(victim) })

  let entry: any
  await eventually(async () => {
    entry = (await api(victim, 'GET', '/quarantine')).body.items.find((e: any) => e.key === key)
    return entry !== undefined
  }, 60_000, 'the poisoned document in quarantine')
  t.match(entry, { key, peer: x.peerId, reason: /memory|operations|longer than/ })
  t.equal((await api(victim, 'GET', `/datasets/${key.split('/')[1] as string}`)).status, 404, 'never stored as live')
  const audited = (await api(victim, 'GET', '/audit?type=sync.quarantined')).body.items
  t.ok(audited.some((e: any) => e.peer === x.peerId && e.details.key === key), 'audited with the peer that sent it')

  await serves(t, victim, 'victim after the attack')
  // Everything the victim holds reaches the second site, the poison never.
  const marker = await serves(t, victim, 'marker')
  await eventually(async () => (await api(second, 'GET', `/datasets/${marker}`)).status === 200, 30_000, 'the marker reaches the second site')
  t.equal(await second.node.docs.meta(key), undefined, 'the second site never received the poisoned document')
  await serves(t, second, 'second site')
  t.ok(peakRss < GiB, `memory stayed under 1 GB (peak ${Math.round(peakRss / 1048576)} MiB)`)

  // After a restart nothing of it is loaded (it was never stored); the
  // quarantine stands; a repair pass that has the attacker offer it again
  // finds it known by its bytes, not loaded again.
  const { dataDir } = victim
  await victim.node.stop()
  const again = await startTestNode(t, { dataDir })
  await serves(t, again, 'victim after the restart')
  t.ok((await api(again, 'GET', '/quarantine')).body.items.some((e: any) => e.key === key), 'the quarantine survives the restart')
  await eventually(async () => {
    await again.node.sync.syncNow(20_000, { full: true })
    const seen = (await api(again, 'GET', '/quarantine')).body.items.find((e: any) => e.key === key)?.seen ?? 0
    return seen >= 2
  }, 60_000, 'the same bytes offered again after the restart')
  t.equal(await again.node.docs.meta(key), undefined, 'still not stored')
  await serves(t, again, 'victim after the repair pass')
  t.ok(peakRss < GiB, `memory stayed under 1 GB (peak ${Math.round(peakRss / 1048576)} MiB)`)

  // An admin drops the entry.
  t.equal((await api(again, 'DELETE', `/quarantine/${entry.id as string}`)).status, 204)
  t.equal((await api(again, 'DELETE', `/quarantine/${entry.id as string}`)).status, 404)
})
