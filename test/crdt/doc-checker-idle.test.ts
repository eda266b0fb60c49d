// The checker's worker holds an Automerge engine whose memory only grows:
// it stops when it has had no work for a while, and the next check starts
// a fresh one. Stopping for idleness is not a restart (nothing was lost).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import * as A from '@automerge/automerge'
import { DocChecker } from '../../src/crdt/doc-checker.ts'
import { DEFAULT_DOC_LIMITS } from '../../src/crdt/doc-limits.ts'

const save = (value: Record<string, unknown>): Uint8Array => A.save(A.from(value))

async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('the worker stops when idle and starts again on the next check', async t => {
  const checker = new DocChecker(DEFAULT_DOC_LIMITS, { idleMs: 100 })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  t.equal(checker.running, false, 'no worker before the first check')
  t.same(await checker.check([{ bytes: save({ a: 1 }) }]), [{ ok: true }])
  await until(() => !checker.running, 'the idle worker to stop')
  t.same(await checker.check([{ bytes: save({ b: 2 }) }, { bytes: new Uint8Array([1, 2, 3]) }]).then(v => v.map(x => x.ok)), [true, false], 'a fresh worker checks the next batch')
  await until(() => !checker.running, 'the idle worker to stop again')
  t.equal(checker.restarts, 0, 'stopping for idleness is not a restart')
})

t.test('a worker busy with checks back to back is not stopped between them', async t => {
  const checker = new DocChecker(DEFAULT_DOC_LIMITS, { idleMs: 100 })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const verdicts = await Promise.all(Array.from({ length: 20 }, async (_, i) => await checker.check([{ bytes: save({ i }) }])))
  t.ok(verdicts.every(v => v.length === 1 && v[0]?.ok === true), 'every queued check got its verdict')
  t.equal(checker.restarts, 0)
})

t.test('a worker that has had only small jobs waits longer; one that took a large job goes after the short time', async t => {
  const checker = new DocChecker(DEFAULT_DOC_LIMITS, { idleMs: 100, leanIdleMs: 600_000 })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  t.equal(checker.idleTimeout, undefined, 'no idle timer before the first check')
  t.same(await checker.check([{ bytes: save({ a: 1 }) }]).then(v => v.map(x => x.ok)), [true])
  t.equal(checker.idleTimeout, 600_000, 'after a small job the worker is kept warm for the next push')
  // Bytes, not operations: large to the checker, cheap to load.
  const large = save({ blob: new Uint8Array(randomBytes(100 * 1024)) })
  t.ok(large.length > 64 * 1024)
  t.same(await checker.check([{ bytes: large }]).then(v => v.map(x => x.ok)), [true])
  t.equal(checker.idleTimeout, 100, 'after a large job it goes soon: its memory may have grown')
  t.same(await checker.check([{ bytes: save({ b: 2 }) }]).then(v => v.map(x => x.ok)), [true])
  t.equal(checker.idleTimeout, 100, 'the same worker stays marked by its large job')
  await until(() => !checker.running, 'the worker to stop')
  t.equal(checker.idleTimeout, undefined, 'no idle timer once it has stopped')
  t.same(await checker.check([{ bytes: save({ c: 3 }) }]).then(v => v.map(x => x.ok)), [true])
  t.equal(checker.idleTimeout, 600_000, 'a fresh worker starts lean')
  t.equal(checker.restarts, 0)
})
