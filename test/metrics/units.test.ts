import t from 'tap'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { lagSeconds } from '../../src/metrics/peer-gauges.ts'
import { cached } from '../../src/metrics/cached.ts'
import { resolveMetricsConfig } from '../../src/metrics/config.ts'
import type { PeerSyncStatus } from '../../src/peer/sync/peer-status.ts'
import { parsePrometheusText, samples } from '../helpers/prom-text.ts'

t.test('the test parser reads what prom-client writes, escapes included', async t => {
  const registry = new Registry()
  new Gauge({ name: 'g', help: 'a "help"\nwith a line feed and \\', labelNames: ['a'], registers: [registry] }).set({ a: 'x"y\\z\nw' }, 2.5)
  new Counter({ name: 'c_total', help: 'c', registers: [registry] }).inc(3)
  const h = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['route'], buckets: [0.1, 1], registers: [registry] })
  h.observe({ route: '/a' }, 0.05)
  h.observe({ route: '/a' }, 5)
  const families = parsePrometheusText(await registry.metrics())
  t.equal(families.get('g')?.help, 'a "help"\nwith a line feed and \\')
  t.same(samples(families, 'g'), [{ name: 'g', labels: { a: 'x"y\\z\nw' }, value: 2.5 }])
  t.equal(families.get('c_total')?.type, 'counter')
  t.equal(families.get('h_seconds')?.type, 'histogram')
  t.same(samples(families, 'h_seconds_bucket', { route: '/a' }).map(s => [s.labels.le, s.value]), [['0.1', 1], ['1', 1], ['+Inf', 2]])
  t.equal(samples(families, 'h_seconds_count')[0]?.value, 2)
})

t.test('the test parser refuses what Prometheus would not take', async t => {
  const bad: Array<[string, string]> = [
    ['no final line feed', 'a 1'],
    ['a value that is no float', 'a one\n'],
    ['a bad metric name', '1a 1\n'],
    ['an unclosed label value', 'a{x="1} 1\n'],
    ['a label twice', 'a{x="1",x="2"} 1\n'],
    ['a bad escape', 'a{x="\\t"} 1\n'],
    ['a missing value', 'a{x="1"}\n'],
    ['an unknown type', '# TYPE a thing\na 1\n'],
    ['a TYPE after samples', 'a 1\n# TYPE a gauge\n'],
    ['a family split in two', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 1\n'],
    ['a series twice', 'a{x="1"} 1\na{x="1"} 2\n'],
    ['a negative counter', '# TYPE a_total counter\na_total -1\n'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    ['a histogram whose +Inf is not its count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n'],
    ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n']
  ]
  for (const [what, text] of bad) t.throws(() => parsePrometheusText(text), what)
})

const status = (over: Partial<PeerSyncStatus>): PeerSyncStatus => ({
  peerId: 'p', addrs: [], connected: false, behindPeer: null, peerBehind: null, bytesIn: 0, bytesOut: 0, recordsIn: 0, recordsOut: 0, ...over
})

t.test('lag in seconds: 0 on a caught-up live link, else since the last catch-up or since the peer was added', async t => {
  const now = Date.parse('2026-05-01T12:00:00Z')
  const synced = '2026-05-01T11:00:00Z'
  t.equal(lagSeconds(status({ connected: true, behindPeer: 0, lastSyncAt: synced }), 0, now), 0, 'a quiet, caught-up link has no lag however old its last catch-up')
  t.equal(lagSeconds(status({ connected: false, behindPeer: 0, lastSyncAt: synced }), 0, now), 3600, 'out of reach: since the last catch-up')
  t.equal(lagSeconds(status({ connected: true, behindPeer: 12, lastSyncAt: synced }), 0, now), 3600, 'connected but catching up')
  t.equal(lagSeconds(status({ connected: true, behindPeer: 0, lastSyncAt: synced, lastError: 'boom' }), 0, now), 3600, 'connected but failing')
  t.equal(lagSeconds(status({ connected: true, behindPeer: 0, lastSyncAt: synced, throttled: { reason: 'over quota' } }), 0, now), 3600, 'connected but throttled')
  t.equal(lagSeconds(status({ connected: false }), now - 7200_000, now), 7200, 'never synced: since it was added')
  t.equal(lagSeconds(status({ connected: false }), undefined, now), undefined)
})

t.test('cached: one read per period, shared by concurrent callers; a failure is not kept', async t => {
  let clock = 0
  let reads = 0
  let fail = false
  const read = cached(async () => { reads++; if (fail) throw new Error('down'); return reads }, 1000, () => clock)
  t.same(await Promise.all([read(), read()]), [1, 1])
  clock = 999
  t.equal(await read(), 1)
  clock = 1000
  t.equal(await read(), 2)
  clock = 2000
  fail = true
  await t.rejects(read())
  fail = false
  t.equal(await read(), 4, 'read again at once after a failure')
})

t.test('metrics config: defaults, a port alone is loopback, bad values are CONFIG_INVALID without the token', async t => {
  t.same(resolveMetricsConfig(undefined), { token: undefined, listen: undefined })
  const token = 'a'.repeat(40)
  t.same(resolveMetricsConfig({ token, listen: 9464 }), { token, listen: { host: '127.0.0.1', port: 9464 } })
  t.same(resolveMetricsConfig({ listen: '9464' }).listen, { host: '127.0.0.1', port: 9464 })
  t.same(resolveMetricsConfig({ listen: '0.0.0.0:9464' }).listen, { host: '0.0.0.0', port: 9464 })
  t.same(resolveMetricsConfig({ listen: '[::1]:9464' }).listen, { host: '::1', port: 9464 })
  for (const bad of [[], 'x', { token: 'short-secret-value' }, { token: `${'a'.repeat(40)} ` }, { token: 12 }, { listen: 'host' }, { listen: ':9464' }, { listen: '127.0.0.1:70000' }, { listen: true }, { port: 9464 }]) {
    let caught: any
    try { resolveMetricsConfig(bad) } catch (err) { caught = err }
    t.equal(caught?.code, 'CONFIG_INVALID', JSON.stringify(bad))
    t.notMatch(caught?.message ?? '', /short-secret-value/, 'the message never shows the token')
  }
})
