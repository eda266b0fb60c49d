// Three stores linked pairwise by live pull sessions both ways, wired as the
// sync service wires them (a checkpoint per peer, offered heads per
// connection), over in-memory streams. A seeded run of concurrent edits to a
// few hot documents, with links cut and restored, must end with every store
// holding the same heads and contents once all are linked again. Edits made
// apart and merged later are what exercise pushes, skipped echoes and
// resumed checkpoints together; this found a push that left out a head
// (test/peer/push.test.ts).
import t from 'tap'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { pullSync } from '../../src/peer/sync/pull.ts'
import { OfferedHeads } from '../../src/peer/sync/offered-heads.ts'
import type { Checkpoint } from '../../src/peer/sync/types.ts'
import type { DocStore } from '../../src/crdt/doc-store.ts'
import { eventually } from '../helpers/mesh.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { addDatasets, testStore } from '../helpers/doc-store.ts'

const NODES = 3
const DOCS = 4
const STEPS = 160

/** mulberry32: a small seeded generator, so a failing seed replays the same edits. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** One link between two stores: a live pull each way, and what each side learnt of the other on this connection. */
class Link {
  readonly #cuts: Array<() => void> = []
  readonly sessions: Array<Promise<unknown>> = []

  constructor (stores: DocStore[], checkpoints: Map<string, Checkpoint>, a: number, b: number) {
    // What a has learnt b holds, and b of a: forgotten with the connection, as the service does.
    const knows = new Map([[a, new OfferedHeads()], [b, new OfferedHeads()]])
    for (const [puller, server] of [[a, b], [b, a]] as Array<[number, number]>) {
      const [client, serverSide] = streamPair()
      const abort = new AbortController()
      const cp = `${puller}<-${server}`
      this.sessions.push(serveSync(serverSide, stores[server] as DocStore, {
        compression: false,
        signal: abort.signal,
        peerHas: (key, heads) => (knows.get(server) as OfferedHeads).has(key, heads)
      }).catch(() => {}))
      this.sessions.push(pullSync(client, stores[puller] as DocStore, checkpoints.get(cp) ?? { epoch: '', through: 0 }, {
        live: true,
        compression: false,
        onOffered: items => { (knows.get(puller) as OfferedHeads).offered(items) },
        saveCheckpoint: async (saved) => { checkpoints.set(cp, saved) }
      }).catch(() => {}))
      this.#cuts.push(() => {
        abort.abort()
        client.abort(new Error('link cut'))
      })
    }
  }

  async cut (): Promise<void> {
    for (const cut of this.#cuts) cut()
    await Promise.all(this.sessions)
  }
}

/** JSON with every map's keys sorted: replicas may list a map's keys in another order. */
function canonical (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : 1))
    : v)
}

async function sameEverywhere (stores: DocStore[], keys: string[]): Promise<boolean> {
  const views = await Promise.all(stores.map(async s => await Promise.all(keys.map(async k => await s.read(k, d => canonical(d))))))
  const heads = await Promise.all(stores.map(async s => (await s.metas(keys)).map(m => [...(m?.heads ?? [])].sort().join())))
  return stores.every((_, i) => JSON.stringify(views[i]) === JSON.stringify(views[0]) && JSON.stringify(heads[i]) === JSON.stringify(heads[0]))
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  t.test(`seed ${seed}: concurrent edits while links are cut and restored converge once all are linked`, async t => {
    const random = prng(seed)
    const pick = (n: number): number => Math.floor(random() * n)
    const stores: DocStore[] = []
    for (let i = 0; i < NODES; i++) stores.push(await testStore(t))
    const keys = await addDatasets(stores[0] as DocStore, DOCS)
    const checkpoints = new Map<string, Checkpoint>()
    const links = new Map<string, Link>()
    const pairs: Array<[number, number]> = []
    for (let a = 0; a < NODES; a++) for (let b = a + 1; b < NODES; b++) pairs.push([a, b])
    const connect = (a: number, b: number): void => { if (!links.has(`${a}-${b}`)) links.set(`${a}-${b}`, new Link(stores, checkpoints, a, b)) }
    const disconnect = async (a: number, b: number): Promise<void> => {
      const link = links.get(`${a}-${b}`)
      links.delete(`${a}-${b}`)
      await link?.cut()
    }
    t.teardown(async () => { for (const [a, b] of pairs) await disconnect(a, b) })
    for (const [a, b] of pairs) connect(a, b)
    await eventually(async () => await sameEverywhere(stores, keys), 30_000, 'the documents reach every store')

    for (let step = 0; step < STEPS; step++) {
      const roll = random()
      if (roll < 0.1) {
        const [a, b] = pairs[pick(pairs.length)] as [number, number]
        if (links.has(`${a}-${b}`)) await disconnect(a, b)
        else connect(a, b)
        continue
      }
      const node = stores[pick(NODES)] as DocStore
      const key = keys[pick(DOCS)] as string
      const value = `s${seed}-${step}`
      if (roll < 0.4) await node.change(key, d => { d.name = value })
      else if (roll < 0.7) await node.change(key, d => { d.tags[value] = true })
      else await node.change(key, d => { d.log ??= []; d.log.push(value) })
      // A few milliseconds between edits: sessions run meanwhile, sometimes mid-batch.
      await new Promise(resolve => setTimeout(resolve, pick(4)))
    }

    for (const [a, b] of pairs) connect(a, b)
    await eventually(async () => await sameEverywhere(stores, keys), 60_000, 'every store holds the same heads and contents')
    t.pass('converged')
  })
}
