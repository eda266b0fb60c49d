/**
 * Where a receiver's memory goes in an initial sync: node A (this process)
 * holds N datasets; node B, in a child process of its own, pulls them all,
 * then checks every document it stored on A's word (what the background
 * verifier does, here as fast as it can). B reports process.memoryUsage at
 * each step, before and after a full GC, so a leak (live heap that stays)
 * can be told from memory a process merely keeps (V8 heap pages, wasm and
 * native allocations).
 *
 *   node scripts/sync-memory.ts [--records 30000]
 */
import { fork } from 'node:child_process'
import v8 from 'node:v8'
import vm from 'node:vm'
import { parseArgs } from 'node:util'
import {
  createDatasetsDirect, httpJson, initBenchDir, intOption, loopbackAddress, machineLine, mib, removeDir, sleep, startBenchNode, table
} from './bench-util.ts'

const ROLE_RECEIVER = '--receiver'
/** Bound on each wait: the sync, and the checking of every document. */
const TIMEOUT_MS = 600_000

type Sample = { step: string } & NodeJS.MemoryUsage

if (process.argv.includes(ROLE_RECEIVER)) {
  await receiver(process.argv[process.argv.indexOf(ROLE_RECEIVER) + 1] as string, Number(process.argv.at(-1)))
} else {
  await driver()
}

async function driver (): Promise<void> {
  const { values } = parseArgs({ options: { records: { type: 'string' } } })
  const records = intOption(values.records, 'records', 30_000)
  const a = await startBenchNode(await initBenchDir('dw-sync-memory-a-'))
  try {
    process.stderr.write(`building ${records} datasets on A\n`)
    await createDatasetsDirect(a.node.docs, a.node.config.adminUserId, records, { concurrency: 64, offset: 0, onProgress: () => {} })
    await a.node.docs.flush()
    const child = fork(import.meta.filename, [ROLE_RECEIVER, loopbackAddress(a.node), String(records)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const samples: Sample[] = []
    let syncMs = 0
    let parkedMax = 0
    const done = new Promise<void>((resolve, reject) => {
      child.on('message', (m: { addr?: string, sample?: Sample, syncMs?: number, parkedMax?: number }) => {
        // A founded the mesh; B joined it: A adds B to its peer book and to the roster (as full).
        if (m.addr !== undefined) void httpJson(a.node.url, 'POST', '/peers', { multiaddr: m.addr, role: 'full' }, a.token).then(() => child.send('go'), reject)
        if (m.sample !== undefined) samples.push(m.sample)
        if (m.syncMs !== undefined) syncMs = m.syncMs
        if (m.parkedMax !== undefined) parkedMax = m.parkedMax
      })
      child.on('exit', code => { code === 0 ? resolve() : reject(new Error(`receiver exited with ${code}`)) })
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 2 * TIMEOUT_MS)
    await done
    clearTimeout(timer)
    const base = samples[0] as Sample
    const rows = samples.map(s => [s.step, mib(s.rss), mib(s.heapUsed), mib(s.heapTotal), mib(s.external), mib(s.rss - s.heapTotal - s.external), `${((s.rss - base.rss) / records).toFixed(0)} B`])
    console.log(`## sync-memory (${new Date().toISOString().slice(0, 16)}Z)\n\nMachine: ${machineLine()}\n`)
    console.log(`B pulled ${records.toLocaleString('en')} datasets from A in ${(syncMs / 1000).toFixed(2)} s; at most ${parkedMax.toLocaleString('en')} changes waited at once for the roster naming B (every session offers the roster first, so this should be 0). B's process.memoryUsage():\n`)
    console.log(table(['step', 'RSS', 'JS heap used', 'JS heap total', 'external', 'RSS - heap total - external', 'RSS growth per record'], rows))
  } finally {
    await a.node.stop()
    await removeDir(a.dataDir)
  }
}

async function receiver (address: string, records: number): Promise<void> {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const sample = (step: string): void => { process.send?.({ sample: { step, ...process.memoryUsage() } }) }
  const b = await startBenchNode(await initBenchDir('dw-sync-memory-b-', { join: true }))
  // Every dataset B stores (what arrives before the roster naming B waits for it, then is judged again).
  const stored = new Set<string>()
  b.node.docs.on('change', e => { if (e.key.startsWith('dataset/')) stored.add(e.key) })
  try {
    gc()
    sample('started (after GC)')
    process.send?.({ addr: loopbackAddress(b.node) })
    await new Promise(resolve => process.once('message', resolve))
    const started = Date.now()
    await httpJson(b.node.url, 'POST', '/peers', { multiaddr: address }, b.token)
    let parkedMax = 0
    while (stored.size < records) {
      parkedMax = Math.max(parkedMax, b.node.docs.parkedCount)
      if (Date.now() - started > TIMEOUT_MS) throw new Error(`sync incomplete after ${TIMEOUT_MS} ms (${stored.size} of ${records}; ${b.node.docs.parkedCount} waiting for the roster)`)
      await sleep(20)
    }
    process.send?.({ syncMs: Date.now() - started, parkedMax })
    sample('synced')
    gc()
    // Every document is judged (signatures and rules) as it arrives: no later check to measure.
    sample('synced, after GC')
  } finally {
    await b.node.stop()
    await removeDir(b.dataDir)
  }
  process.disconnect?.()
}
