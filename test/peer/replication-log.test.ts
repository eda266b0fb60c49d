import t from 'tap'
import { openDb, jsonSublevel } from '../../src/db.ts'
import { ReplicationLog, type ServedEntry } from '../../src/peer/sync/replication-log.ts'
import { tempDir } from '../helpers/tmp.ts'

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
