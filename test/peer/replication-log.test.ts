import t from 'tap'
import { openDb, jsonSublevel } from '../../src/db.ts'
import { ReplicationLog, type ServedEntry } from '../../src/peer/sync/replication-log.ts'
import { tempDir } from '../helpers/tmp.ts'
import { streamPair } from '../helpers/stream-pair.ts'
import { DocStore } from '../../src/crdt/doc-store.ts'
import { summarise } from '../../src/crdt/summary.ts'
import { initDataset } from '../../src/crdt/records/dataset.ts'
import { docKey, newId } from '../../src/crdt/keys.ts'
import { serveSync } from '../../src/peer/sync/serve.ts'
import { PROTOCOL_VERSION } from '../../src/peer/sync/messages.ts'

t.test('the log vouches only for what a puller acknowledged, in the session it names', async t => {
  const dir = await tempDir(t)
  const db = await openDb(dir)
  const log = new ReplicationLog(jsonSublevel<ServedEntry>(db, 'served'))
  t.notOk(await log.vouches('p', 'e1', 's1', 5), 'nothing recorded yet')
  await log.record('p', 'e1', 's1', 10)
  t.ok(await log.vouches('p', 'e1', 's1', 10))
  t.ok(await log.vouches('p', 'e1', 's1', 4), 'a checkpoint behind what was acknowledged')
  t.notOk(await log.vouches('p', 'e1', 's1', 11), 'past what was acknowledged')
  t.notOk(await log.vouches('p', 'e1', 's2', 10), 'another session')
  t.notOk(await log.vouches('p', 'e1', undefined, 10), 'no session (a puller of the previous version)')
  t.notOk(await log.vouches('p', 'e2', 's1', 10), 'another epoch')
  t.notOk(await log.vouches('q', 'e1', 's1', 10), 'another puller')

  // Two sessions of one puller (a `dw sync` beside the live session): both stay known.
  await log.record('p', 'e1', 's2', 12)
  t.ok(await log.vouches('p', 'e1', 's1', 10))
  t.ok(await log.vouches('p', 'e1', 's2', 12))
  // Only the recent ones are kept.
  for (let i = 3; i < 12; i++) await log.record('p', 'e1', `s${i}`, 20 + i)
  t.notOk(await log.vouches('p', 'e1', 's1', 10), 'the oldest session is forgotten')
  t.ok(await log.vouches('p', 'e1', 's11', 31))

  await db.close()
  const again = await openDb(dir)
  t.teardown(async () => { await again.close() })
  const reopened = new ReplicationLog(jsonSublevel<ServedEntry>(again, 'served'))
  t.ok(await reopened.vouches('p', 'e1', 's11', 31), 'durable across a restart')
})

t.test('a checkpoint past the last logged acknowledgement resumes from that acknowledgement, not from 0', async t => {
  const db = await openDb(await tempDir(t))
  t.teardown(async () => { await db.close() })
  const store = await DocStore.open(db, { summarise })
  const actor = { userId: 'u', at: '2026-01-01T00:00:00.000Z' }
  for (let i = 0; i < 30; i++) {
    const id = newId()
    await store.create(docKey('dataset', id), d => initDataset(d, 'dataset', id, { name: `d${i}` }, actor))
  }
  const log = new ReplicationLog(jsonSublevel<ServedEntry>(db, 'served'))
  // The puller saved 20 in session s1, but its acknowledgement of 20 was lost with the connection: the log holds 10.
  await log.record('p', store.epoch, 'aa11', 10)
  const welcome = async (session: string, since: number): Promise<{ from: number, rewound: string | undefined }> => {
    const [client, server] = streamPair()
    let rewound: string | undefined
    const serving = serveSync(server, store, {
      log: { acknowledged: async (epoch, s) => await log.acknowledged('p', epoch, s), record: async () => {} },
      onRewind: ({ reason }) => { rewound = reason }
    })
    await client.send({ t: 'hello', v: PROTOCOL_VERSION, epoch: store.epoch, since, live: false, session })
    const answer = (await client.read()).value as { from: number }
    client.abort(new Error('enough'))
    await serving.catch(() => {})
    return { from: answer.from, rewound }
  }
  const lost = await welcome('aa11', 20)
  t.equal(lost.from, 10, 'from the last acknowledgement the log holds')
  t.match(lost.rewound, /holds its acknowledgement up to 10/)
  t.same(await welcome('aa11', 8), { from: 8, rewound: undefined }, 'a checkpoint behind it is trusted as it is')
  t.equal((await welcome('bb22', 20)).from, 0, 'a session the log does not know: from 0')
})
