// A site that one admin trusted turns hostile. It runs as a real node
// process with its own legitimate identity, enrolled as a contributor,
// writes into its own store whatever it likes, signs it with its real key
// and lets the victim pull it through the normal protocol. Nothing it
// forges may take effect on the victim, or on a second site that peers only
// with the victim; every refusal is audited; honest work goes on.
import t from 'tap'
import { addMember, ADMIN_PASSWORD, startTestNode, type TestNode } from '../helpers/node.ts'
import { addressOf, converged, eventually, link } from '../helpers/mesh.ts'
import { startAttacker, type Attacker } from '../helpers/attacker.ts'

async function api (n: TestNode, method: string, url: string, payload?: object, headers = n.admin): Promise<{ status: number, body: any }> {
  const res = await n.node.api.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) })
  return { status: res.statusCode, body: res.body === '' ? undefined : res.json() }
}

/** The newest audit entry's id: refusals looked for afterwards are newer than it. */
let since = ''
async function markAudit (n: TestNode): Promise<void> {
  since = (await api(n, 'GET', '/audit?limit=1')).body.items[0]?.id ?? ''
}

/** Waits for the victim to audit a refused change to `key` that the attacker sent (since the last mark), and returns the reason. */
async function refused (n: TestNode, x: Attacker, key: string, origin = x.peerId): Promise<string> {
  let reason = ''
  await eventually(async () => {
    const { body } = await api(n, 'GET', '/audit?type=sync.refused&limit=1000')
    const hit = body.items.find((e: any) => e.id > since && e.details?.key === key && e.details?.origin === origin && e.peer === x.peerId)
    reason = hit?.details.reason ?? ''
    return hit !== undefined
  }, 20_000, `refusal of ${key} audited`)
  return reason
}

async function loginStatus (n: TestNode, username: string, password: string): Promise<number> {
  return (await n.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })).statusCode
}

t.test('a trusted contributor site that turns hostile cannot take over the mesh', async t => {
  const victim = await startTestNode(t)
  const second = await startTestNode(t)
  await link(victim, second)
  const x = await startAttacker(t)
  t.equal((await api(victim, 'POST', '/peers', { multiaddr: x.addr, role: 'contributor' })).status, 201)
  await x.call('addPeer', { addr: addressOf(victim) })

  const member = await addMember(victim, 'mara')
  const made = await api(victim, 'POST', '/datasets', { name: 'mara data' }, member.headers)
  t.equal(made.status, 201)
  const dataset = made.body.id as string
  // The attacker holds the roster (naming it a contributor), the member's account and dataset.
  await eventually(async () => await x.call('has', { key: `dataset/${dataset}` }) && await x.call('has', { key: `user/${member.id}` }), 20_000, 'attacker synced')
  await eventually(async () => (await api(second, 'GET', `/datasets/${dataset}`)).status === 200, 20_000, 'second site synced')

  t.test('an account with role admin is refused', async t => {
    await markAudit(victim)
    const id = await x.attack('adminAccount', { username: 'evil-admin' })
    t.match(await refused(victim, x, `user/${id}`), /only full nodes change accounts/)
    t.equal(await loginStatus(victim, 'evil-admin', 'attacker password'), 401)
    t.equal((await api(victim, 'GET', `/users/${id}`)).status, 404)
    t.equal((await api(second, 'GET', `/users/${id}`)).status, 404)
  })

  t.test('an account named admin created in 1970 takes no login', async t => {
    await markAudit(victim)
    const id = await x.attack('account1970', { username: 'admin' })
    await refused(victim, x, `user/${id}`)
    t.equal(await loginStatus(victim, 'admin', ADMIN_PASSWORD), 200, 'the real admin still signs in on the victim')
    t.equal(await loginStatus(second, 'admin', ADMIN_PASSWORD), 200, 'and on the second site')
    t.equal(await loginStatus(victim, 'admin', 'attacker password'), 401)
  })

  t.test('a member\'s dataset cannot be renamed, versioned or planted in their name', async t => {
    await markAudit(victim)
    await x.attack('impersonate', { member: member.id, dataset })
    t.match(await refused(victim, x, `dataset/${dataset}`), /may not act for account/)
    const planted = await x.attack('datasetOwnedBy', { member: member.id })
    await refused(victim, x, `dataset/${planted}`)
    for (const n of [victim, second]) {
      const got = (await api(n, 'GET', `/datasets/${dataset}`)).body
      t.equal(got.name, 'mara data')
      t.equal(got.versions.length, 0)
      t.equal((await api(n, 'GET', `/datasets/${planted}`)).status, 404)
    }
  })

  t.test('another account\'s role and password cannot be rewritten', async t => {
    await markAudit(victim)
    await x.attack('setRole', { id: member.id, role: 'admin' })
    await x.attack('replacePassword', { id: member.id })
    await refused(victim, x, `user/${member.id}`)
    for (const n of [victim, second]) {
      t.equal((await api(n, 'GET', `/users/${member.id}`)).body.role, 'member')
      t.equal(await loginStatus(n, 'mara', 'member password'), 200)
      t.equal(await loginStatus(n, 'mara', 'attacker password'), 401)
    }
  })

  t.test('a site\'s local bootstrap admin cannot be written from outside', async t => {
    await markAudit(victim)
    const localAdmin = victim.node.trust.localAdminId
    await x.attack('localAdminDoc', { id: localAdmin })
    t.match(await refused(victim, x, `user/${localAdmin}`), /local-only/)
    t.equal(await loginStatus(victim, 'admin', ADMIN_PASSWORD), 200)
    t.equal(await loginStatus(victim, 'admin', 'attacker password'), 401)
  })

  t.test('changes with a signature that is not the claimed node\'s are refused', async t => {
    await markAudit(victim)
    await x.call('forge', { claims: { n: victim.node.peerId } })
    const reattributed = await x.attack('ownDataset', { name: 'claims to come from the victim' })
    await x.call('forge', { badSignature: true })
    const badSig = await x.attack('ownDataset', { name: 'bad signature' })
    await x.call('forge', {})
    t.match(await refused(victim, x, `dataset/${reattributed}`, victim.node.peerId), /signature is not node/, 'a change re-attributed to the victim is refused, and audited as sent by the attacker')
    t.match(await refused(victim, x, `dataset/${badSig}`), /signature is not node/)
  })

  t.test('tombstoning everything it holds deletes nothing', async t => {
    await markAudit(victim)
    const other = (await api(victim, 'POST', '/datasets', { name: 'mara, untouched so far' }, member.headers)).body.id as string
    await eventually(async () => await x.call('has', { key: `dataset/${other}` }), 20_000, 'attacker holds it')
    const before = (await api(victim, 'GET', '/datasets?limit=100')).body.items.length
    await x.attack('tombstoneAll')
    t.match(await refused(victim, x, `dataset/${other}`), /only the owner/)
    for (const n of [victim, second]) {
      t.equal((await api(n, 'GET', `/datasets/${other}`)).status, 200, 'the member\'s dataset stands')
      t.equal((await api(n, 'GET', `/users/${member.id}`)).status, 200, 'the member\'s account stands')
    }
    t.equal((await api(victim, 'GET', '/datasets?limit=100')).body.items.length, before)
  })

  t.test('what a contributor may do still works, and honest sites converge', async t => {
    await markAudit(victim)
    const own = await x.attack('ownDataset', { name: 'a contributor\'s own dataset' })
    await eventually(async () => (await api(second, 'GET', `/datasets/${own}`)).status === 200, 20_000, 'own dataset relayed to the second site')
    const a = await api(victim, 'POST', '/datasets', { name: 'after the attacks, victim' })
    const b = await api(second, 'PATCH', `/datasets/${dataset}`, { description: 'edited on the second site' })
    t.equal(a.status, 201)
    t.equal(b.status, 200)
    await eventually(async () => await converged([victim, second]), 20_000, 'victim and second site converge')
    t.equal((await api(victim, 'GET', `/datasets/${dataset}`)).body.description, 'edited on the second site')
  })

  t.test('made full, it still takes no username a site already has; revoked, it is cut off', async t => {
    await markAudit(victim)
    t.equal((await api(victim, 'PUT', `/nodes/${x.peerId}`, { role: 'full' })).status, 200)
    await eventually(async () => (await x.call('info')).roster.some((e: any) => e.peerId === x.peerId && e.role === 'full'), 20_000, 'attacker sees its new role')
    const forged = await x.attack('account1970', { username: 'mara' })
    // A full node may create accounts: this one arrives, but the name stays with the account each site had.
    await eventually(async () => (await api(victim, 'GET', `/users/${forged}`)).status === 200, 20_000, 'forged account arrives')
    await eventually(async () => (await api(second, 'GET', `/users/${forged}`)).status === 200, 20_000, 'and is relayed')
    for (const n of [victim, second]) {
      t.equal(await loginStatus(n, 'mara', 'member password'), 200, 'the real mara still signs in')
      t.equal(await loginStatus(n, 'mara', 'attacker password'), 401, 'the forged 1970 account does not')
      t.ok((await api(n, 'GET', `/users/${forged}`)).body.usernameConflict, 'the newcomer is flagged')
    }
    t.equal((await api(victim, 'POST', `/nodes/${x.peerId}/revoke`)).status, 200)
    await eventually(async () => (await api(second, 'GET', '/nodes')).body.items.some((e: any) => e.peerId === x.peerId && e.role === 'revoked'), 20_000, 'the revocation reaches the second site')
    await eventually(async () => !(await api(victim, 'GET', '/sync/status')).body.peers.some((p: any) => p.peerId === x.peerId), 10_000, 'the revoked node is no longer a peer')
    t.pass('cut off')
    t.equal((await api(victim, 'POST', '/peers', { multiaddr: x.addr })).status, 409, 'a revoked node cannot be added back')
  })
})
