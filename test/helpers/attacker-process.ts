// A hostile node, run as its own process: a real dw node (LevelDB, libp2p,
// its own legitimate identity, trusted by one site) whose trust gate has
// been switched off, so it writes into its own store whatever it likes,
// signs it with its real key and serves it through the normal protocol.
// Driven over IPC by test/helpers/attacker.ts.
import { multiaddr } from '@multiformats/multiaddr'
import * as A from '@automerge/automerge'
import { initNode, startNode, type RunningNode } from '../../src/node.ts'
import { hashPassword } from '../../src/auth/passwords.ts'
import type { ChangeAdmission } from '../../src/crdt/doc-store.ts'
import { encodeClaims, parseClaims } from '../../src/trust/claims.ts'
import { initUser } from '../../src/crdt/records/user.ts'
import { initDataset } from '../../src/crdt/records/dataset.ts'
import { addVersion } from '../../src/crdt/records/versions.ts'
import { markDeleted } from '../../src/crdt/records/common.ts'
import { newId } from '../../src/crdt/keys.ts'
import { binarySublevel, jsonSublevel, type Db } from '../../src/db.ts'
import type { DocMeta } from '../../src/crdt/doc-store.ts'

let node: RunningNode
/** Claims to put on the next changes instead of honest ones (fields merged over the honest claims). */
let forged: Record<string, unknown> = {}
let unsigned = false
let badSignature = false

function evilGate (): ChangeAdmission {
  const real = node.trust
  return {
    claims: async (author) => {
      const honest = JSON.parse(await real.claims(author))
      return encodeClaims({ ...honest, ...forged })
    },
    referenceRank: (key) => real.referenceRank(key),
    firstKeys: () => real.firstKeys(),
    sign: (hash) => {
      const sig = real.sign(hash)
      if (badSignature) sig[0] = (sig[0] as number) ^ 0xff
      return unsigned ? new Uint8Array(0) : sig
    },
    // Judge as an honest node would (so it still joins the mesh), then accept regardless.
    judge: async (ctx, change, sig, origin) => {
      await real.judge(ctx, change, sig, origin).catch(() => undefined)
      return { ok: true }
    }
  }
}

const at = (): string => new Date().toISOString()
const pw = async (): Promise<string> => await hashPassword('attacker password', { ln: 10, r: 8, p: 1 })
const me = (): string => node.trust.localAdminId

type Attack = (args: any) => Promise<unknown>
const attacks: Record<string, Attack> = {
  /** An account with role admin, made by a contributor node's own admin. */
  async adminAccount ({ username }) {
    const id = newId()
    const hash = await pw()
    await node.docs.create(`user/${id}`, d => initUser(d, id, { username, role: 'admin', passwordHash: hash }, { userId: me(), at: at() }), { author: me() })
    return id
  },
  /** An account named like someone else's, with a creation time in 1970. */
  async account1970 ({ username }) {
    const id = newId()
    const hash = await pw()
    await node.docs.create(`user/${id}`, d => initUser(d, id, { username, role: 'admin', passwordHash: hash }, { userId: me(), at: '1970-01-01T00:00:00.000Z' }), { author: me() })
    return id
  },
  async setRole ({ id, role }) {
    await node.docs.change(`user/${id}`, d => { d.role = role }, { author: me() })
  },
  async replacePassword ({ id }) {
    const hash = await pw()
    await node.docs.change(`user/${id}`, d => { d.passwordHash = hash }, { author: me() })
  },
  /** Writes into the key of another site's local-only bootstrap admin. */
  async localAdminDoc ({ id }) {
    const hash = await pw()
    await node.docs.create(`user/${id}`, d => initUser(d, id, { username: 'admin', role: 'admin', passwordHash: hash }, { userId: id, at: at() }), { author: me() })
  },
  /** Renames a member's dataset and adds a version, stamped as that member, signed as that member's change. */
  async impersonate ({ member, dataset }) {
    await node.docs.change(`dataset/${dataset}`, d => {
      d.name = 'renamed by the attacker'
      d.updatedBy = member
      addVersion(d, [], 'forged version', { userId: member, at: at() })
    }, { author: member })
  },
  async datasetOwnedBy ({ member }) {
    const id = newId()
    await node.docs.create(`dataset/${id}`, d => initDataset(d, 'dataset', id, { name: 'planted' }, { userId: member, at: at() }), { author: member })
    return id
  },
  /** Tombstones every record and account this node holds. */
  async tombstoneAll () {
    let n = 0
    for (const kind of ['user', 'dataset', 'model', 'report']) {
      for await (const [key, meta] of node.docs.scan(`${kind}/`)) {
        if (meta.local === true) continue
        await node.docs.change(key, d => { markDeleted(d, { userId: me(), at: at() }) }, { author: me() })
        n++
      }
    }
    return n
  },
  /**
   * Serves `bytes` (base64) as the document `key` without ever loading
   * them: an honest document is made, then its stored bytes are swapped
   * under the store and given heads of their own, so every peer that pulls
   * it is offered something it lacks.
   */
  async plantRaw ({ key, bytes }) {
    await node.docs.create(key, d => initDataset(d, 'dataset', key.split('/')[1] as string, { name: 'soon poisoned' }, { userId: me(), at: at() }), { author: me() })
    await node.docs.flush()
    // The running node carries its database (RunningNode does not name it: nothing else should touch it).
    const db = (node as unknown as { db: Db }).db
    const metaDb = jsonSublevel<DocMeta>(db, 'meta')
    const meta = await metaDb.get(key) as DocMeta
    await binarySublevel(db, 'snap').put(key, Buffer.from(bytes, 'base64'))
    await metaDb.put(key, { ...meta, chunks: 0, heads: ['ff'.repeat(32)] })
    return key
  },
  /** A dataset of its own, which a contributor may make: the control case. */
  async ownDataset ({ name }) {
    const id = newId()
    await node.docs.create(`dataset/${id}`, d => initDataset(d, 'dataset', id, { name }, { userId: me(), at: at() }), { author: me() })
    return id
  }
}

async function handle (msg: any): Promise<unknown> {
  switch (msg.op) {
    case 'info': return { peerId: node.peerId, addr: node.addresses().find(a => a.includes('/ip4/127.0.0.1/')), meshId: node.trust.meshId, roster: await node.nodes.list() }
    case 'addPeer': { const e = await node.book.add(msg.addr); node.sync.peerAdded(e.peerId); return e.peerId }
    case 'dial': { await node.libp2p.dial(multiaddr(msg.addr)); return true }
    case 'forge': forged = msg.claims ?? {}; unsigned = msg.unsigned === true; badSignature = msg.badSignature === true; return true
    case 'attack': return await (attacks[msg.name] as Attack)(msg.args ?? {})
    case 'has': return (await node.docs.meta(msg.key)) !== undefined
    case 'claims': return parseClaims(msg.message)
    case 'heads': return (await node.docs.meta(msg.key))?.heads
    case 'stop': await node.stop(); setImmediate(() => process.exit(0)); return true
    default: throw new Error(`unknown op ${String(msg.op)}`)
  }
}

async function main (): Promise<void> {
  const dataDir = process.argv[2] as string
  await initNode({ dataDir, adminPassword: 'attacker admin password', login: { passwordCost: 14 }, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join: true })
  node = await startNode({ dataDir })
  node.docs.admitWith(evilGate())
  void A
  process.on('message', (msg: any) => {
    handle(msg).then(
      result => { process.send?.({ id: msg.id, result: result ?? null }) },
      (err: Error) => { process.send?.({ id: msg.id, error: err.message }) }
    )
  })
  process.send?.({ ready: true })
}

void main().catch(err => { console.error(err); process.exit(1) })
