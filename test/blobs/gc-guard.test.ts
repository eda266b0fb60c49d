import t from 'tap'
import { GcGuard } from '../../src/blobs/gc-guard.ts'

/** A promise and the function that settles it, to hold an upload open for as long as a test needs. */
function gate (): { open: () => void, opened: Promise<void> } {
  let open!: () => void
  const opened = new Promise<void>(resolve => { open = resolve })
  return { open, opened }
}

t.test('collection waits for uploads in flight, and holds new ones back while it runs', async t => {
  const guard = new GcGuard()
  const order: string[] = []
  const upload = gate()
  const first = guard.hold(async () => { await upload.opened; order.push('upload 1 done') })
  const gc = guard.exclusive(async () => { order.push('gc') })
  const second = guard.hold(async () => { order.push('upload 2') })
  await new Promise(resolve => setImmediate(resolve))
  t.same(order, [], 'gc waits for the upload in flight; the new upload waits for gc')
  upload.open()
  await Promise.all([first, gc, second])
  t.same(order, ['upload 1 done', 'gc', 'upload 2'])
})

t.test('whenIdle runs at once, and is awaited, when no upload is in flight', async t => {
  const guard = new GcGuard()
  let ran = false
  await guard.whenIdle(async () => { ran = true })
  t.ok(ran)
})

t.test('whenIdle waits for the last upload in flight without holding anyone back', async t => {
  const guard = new GcGuard()
  const order: string[] = []
  const long = gate()
  const longUpload = guard.hold(async () => { await long.opened; order.push('long upload done') })
  await guard.whenIdle(async () => { order.push('clean-up') })
  t.same(order, [], 'deferred: the call returns before the work runs')
  await guard.hold(async () => { order.push('new upload') })
  t.same(order, ['new upload'], 'a new upload is not held back by the deferred work')
  long.open()
  await longUpload
  await guard.exclusive(async () => {}) // the deferred work runs exclusively: this waits for it
  t.same(order, ['new upload', 'long upload done', 'clean-up'])
})

t.test('deferred work that fails is dropped; the guard keeps working', async t => {
  const guard = new GcGuard()
  const upload = gate()
  const held = guard.hold(async () => { await upload.opened })
  await guard.whenIdle(async () => { throw new Error('store down') })
  upload.open()
  await held
  let ran = false
  await guard.exclusive(async () => { ran = true })
  t.ok(ran, 'exclusive work still runs after a failed deferred task')
})
