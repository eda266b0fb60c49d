import { multiaddr } from '@multiformats/multiaddr'
import t from 'tap'
import type { Stream } from '@libp2p/interface'
import { FramedStream } from './src/peer/framed-stream.ts'
import { startTestPeer, trustEachOther } from './test/peer/helpers.ts'

t.test('probe', async (t) => {
  const a = await startTestPeer(t); const b = await startTestPeer(t); await trustEachOther(a, b)
  const streams: Stream[] = []
  await b.node.handle('/p', (s) => { streams.push(s) })
  // 1) onDrain one-shot check: never read on b side
  const s = await a.node.dialProtocol(multiaddr(b.addr), '/p')
  let drains = 0; let immediate = 0
  const chunk = new Uint8Array(64 * 1024)
  for (let i = 0; i < 200; i++) {
    if (!s.send(chunk)) {
      const st = Date.now()
      const r = await Promise.race([s.onDrain().then(() => 'drained'), new Promise(r => setTimeout(() => r('timeout'), 300))])
      if (r === 'drained') { drains++; if (Date.now() - st < 2) immediate++ }
      t.comment(`i=${i} onDrain -> ${r} after ${Date.now() - st}ms, needsDrain now ${s.writableNeedsDrain}, writeBuffer ${s.writeBufferLength}`)
      if (r === 'timeout') {
        // let receiver read so window opens
        const r2 = streams[0]!; r2.addEventListener('message', () => {})
      }
      if (drains > 3) break
    }
  }
  s.abort(new Error('x'))
  // 2) throughput variants
  for (const mode of ['await-each', 'fire-and-forget']) {
    const { promise, resolve } = Promise.withResolvers<Stream>()
    await b.node.handle('/q-' + mode, (st) => { resolve(st) })
    const left = new FramedStream(await a.node.dialProtocol(multiaddr(b.addr), '/q-' + mode))
    await left.send({ hi: 1 })
    const right = new FramedStream(await promise)
    const n = 20000; const start = Date.now()
    const reading = (async () => { let c = 0; for await (const _ of right) c++; return c })()
    if (mode === 'await-each') { for (let i = 0; i < n; i++) await left.send({ seq: i, change: new Uint8Array(100) }) }
    else { let last; for (let i = 0; i < n; i++) last = left.send({ seq: i, change: new Uint8Array(100) }); await last }
    await left.close()
    const c = await reading
    t.comment(`${mode}: ${c} msgs in ${Date.now() - start} ms`)
  }
})
