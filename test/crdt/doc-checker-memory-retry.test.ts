// The memory limit is measured on the whole process: the node's own work
// growing its memory while a document loads tripped it, and quarantined an
// honest document for good. A trip is now retried once, first in a fresh
// worker; a document built to expand trips it again and is quarantined.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import * as A from '@automerge/automerge'
import { DocChecker } from '../../src/crdt/doc-checker.ts'
import { DEFAULT_DOC_LIMITS } from '../../src/crdt/doc-limits.ts'

const POISON = new URL('../fixtures/poisoned-document.bin', import.meta.url)
const MiB = 1024 * 1024

t.test('an honest document whose load coincides with the node growing its memory is admitted on the retry', async t => {
  const checker = new DocChecker({ ...DEFAULT_DOC_LIMITS, maxOps: 10_000_000, maxLoadMemoryBytes: 200 * MiB })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  t.same(await checker.check([{ bytes: A.save(A.from({ warm: 1 })) }]), [{ ok: true }], 'the worker is up')
  // About half a second of loading. The job is posted (and the memory
  // baseline taken) within this turn of the event loop; the node's own
  // 400 MiB arrive in the next, while the worker loads.
  const doc = A.from<any>({ items: Array.from({ length: 150_000 }, (_, i) => i) })
  const bytes = A.save(doc)
  A.free(doc)
  const checking = checker.check([{ bytes }])
  await new Promise(resolve => setImmediate(resolve))
  let ballast: Buffer | undefined = Buffer.alloc(400 * MiB, 1)
  const [verdict] = await checking
  t.equal(ballast.length, 400 * MiB, 'the node grew during the check')
  ballast = undefined
  t.equal(checker.restarts, 1, 'the first load tripped the limit and its worker went')
  t.same(verdict, { ok: true }, 'the retry admitted it')
})

t.test('a document built to expand trips the limit twice and is quarantined', async t => {
  const checker = new DocChecker({ ...DEFAULT_DOC_LIMITS, maxLoadMemoryBytes: 64 * MiB })
  checker.start()
  t.teardown(async () => { await checker.stop() })
  const [verdict, next] = await checker.check([{ bytes: new Uint8Array(await readFile(POISON)) }, { bytes: A.save(A.from({ ok: 1 })) }])
  t.match(verdict, { ok: false, quarantine: true, reason: /memory by more than 64 MiB/ })
  t.equal(checker.restarts, 2, 'loaded twice, each time in a worker then terminated')
  t.same(next, { ok: true }, 'the next document in the job is checked as usual')
})
