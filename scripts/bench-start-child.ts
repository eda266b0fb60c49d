/**
 * One start-up measurement in a clean process, for scripts/bench-local.ts:
 * starts the node in DIR, waits until GET /healthz answers over HTTP, prints
 * one JSON line and stops the node.
 *
 *   node scripts/bench-start-child.ts DIR
 *
 * importMs: loading the node's modules; startMs: startNode() until /healthz
 * answered; sinceProcessStartMs: process start (Node boot included) until
 * /healthz answered; rss/heapUsed: memory right after (rssIdle: after 1 s idle).
 */
const dir = process.argv[2]
if (dir === undefined) {
  console.error('usage: node scripts/bench-start-child.ts DIR')
  process.exit(2)
}
const t0 = performance.now()
const { startNode } = await import('../src/node.ts')
const t1 = performance.now()
const node = await startNode({ dataDir: dir })
const res = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(30_000) })
if (!res.ok) throw new Error(`/healthz answered ${res.status}`)
await res.arrayBuffer()
const t2 = performance.now()
const rss = process.memoryUsage.rss()
const heapUsed = process.memoryUsage().heapUsed
await new Promise(resolve => setTimeout(resolve, 1000))
const rssIdle = process.memoryUsage.rss()
await node.stop()
process.stdout.write(JSON.stringify({ importMs: t1 - t0, startMs: t2 - t1, rss, heapUsed, rssIdle, sinceProcessStartMs: t2 }) + '\n')
