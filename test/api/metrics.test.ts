import t from 'tap'
import { initNode, startNode } from '../../src/node.ts'
import { readConfig, writeConfig } from '../../src/config.ts'
import { ADMIN_PASSWORD, TEST_LOGIN, addMember, startTestNode, type TestNode } from '../helpers/node.ts'
import { addPeer, addressOf, eventually, link } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { parsePrometheusText, samples, type Family } from '../helpers/prom-text.ts'

type T = Parameters<typeof startTestNode>[0]

const METRICS_TOKEN = 'metrics-token-0123456789abcdefghijklmnopqrstuvwxyz'

/** A data directory as startTestNode makes one, with `metrics` set in its config.json. */
async function initWithMetrics (t: T, metrics: unknown, join: boolean): Promise<string> {
  const dataDir = await tempDir(t, 'dw-metrics-')
  await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join, files: { copy: false } })
  const config = await readConfig(dataDir)
  await writeConfig(dataDir, { ...config, metrics } as typeof config)
  return dataDir
}

/** GET /metrics over the node's real socket, as Prometheus (or curl) would. */
async function scrape (url: string, headers: Record<string, string> = {}): Promise<{ status: number, type: string | null, body: string }> {
  const res = await fetch(url, { headers })
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() }
}

async function metricsOf (n: TestNode, headers: Record<string, string> = n.admin): Promise<Map<string, Family>> {
  const res = await scrape(`${n.node.url}/metrics`, headers)
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.body}`)
  return parsePrometheusText(res.body)
}

const one = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined => {
  const found = samples(families, name, labels)
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} series`)
  return found[0]?.value
}

t.test('two linked nodes: /metrics parses as the Prometheus text format and has per-peer lag, HTTP and process series', async t => {
  const a = await startTestNode(t, { dataDir: await initWithMetrics(t, { token: METRICS_TOKEN }, false) })
  const b = await startTestNode(t, { dataDir: await initWithMetrics(t, undefined, true) })
  await link(a, b)
  const created = await a.node.api.inject({ method: 'POST', url: '/datasets', headers: a.admin, payload: { name: 'Rainfall' } })
  t.equal(created.statusCode, 201)
  const id = created.json().id as string
  t.equal((await a.node.api.inject({ url: `/datasets/${id}`, headers: a.admin })).statusCode, 200)
  await eventually(async () => (await b.node.api.inject({ url: `/datasets/${id}`, headers: b.admin })).statusCode === 200, 20_000, 'the dataset on b')

  const res = await scrape(`${a.node.url}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })
  t.equal(res.status, 200)
  t.match(res.type, /^text\/plain; version=0\.0\.4/)
  const families = parsePrometheusText(res.body)

  const peer = { peer: b.node.peerId }
  t.equal(families.get('dw_peer_lag_seconds')?.type, 'gauge')
  t.ok((one(families, 'dw_peer_lag_seconds', peer) ?? -1) >= 0, 'a lag in seconds for the linked peer')
  t.ok((one(families, 'dw_peer_lag_records', { ...peer, direction: 'in' }) ?? -1) >= 0, 'a lag in records for the linked peer')
  t.equal(one(families, 'dw_peer_connected', peer), 1)
  t.equal(one(families, 'dw_peer_info', { ...peer, name: '' }), 1)
  t.ok((one(families, 'dw_peer_sync_bytes_total', { ...peer, direction: 'in' }) ?? 0) > 0, 'bytes in from the peer')
  t.ok((one(families, 'dw_peer_records_sent_total', peer) ?? 0) >= 1, 'the dataset counts as a record sent to b')
  t.ok((one(families, 'dw_sync_sessions_total', { ...peer, outcome: 'ok' }) ?? 0) >= 1, 'sync sessions counted from the audit log')
  t.equal(one(families, 'dw_sync_errors_total', { ...peer, reason: 'protocol' }), 0, 'error series are there at 0 for a peer in the book, so a first error is an increase')
  t.equal(samples(families, 'dw_peer_lag_seconds').length, 1, 'one series per peer in the book, nothing else')

  t.equal(one(families, 'dw_documents', { kind: 'dataset', state: 'live' }), 1)
  t.equal(one(families, 'dw_ready'), 1)
  t.equal(samples(families, 'dw_ready_check').length, 3)
  t.ok((one(families, 'dw_disk_free_bytes') ?? 0) > 0)
  t.equal(one(families, 'dw_node_info', { peer: a.node.peerId }), 1)

  t.equal(families.get('dw_http_request_duration_seconds')?.type, 'histogram')
  t.equal(one(families, 'dw_http_request_duration_seconds_count', { method: 'POST', route: '/datasets', status_code: '201' }), 1, 'the request timed under its route pattern')
  t.equal(one(families, 'dw_http_request_duration_seconds_count', { method: 'GET', route: '/datasets/:id', status_code: '200' }), 1, 'ids stay out of the route label')
  t.notOk(samples(families, 'dw_http_request_duration_seconds_count').some(s => s.labels.route?.includes(id) === true))

  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(families.has(name), `process metric ${name}`)
  }

  // A quiet, caught-up link has no lag, however long ago its last change came.
  await eventually(async () => one(await metricsOf(a), 'dw_peer_lag_seconds', peer) === 0, 20_000, 'a caught up with b')

  // Out of reach, the lag is the time since the last catch-up, and grows.
  await b.node.stop()
  await eventually(async () => one(await metricsOf(a), 'dw_peer_connected', peer) === 0, 20_000, 'b disconnected')
  const first = await metricsOf(a)
  const lag = one(first, 'dw_peer_lag_seconds', peer) as number
  const lastSync = one(first, 'dw_peer_last_sync_timestamp_seconds', peer) as number
  t.ok(lag > 0, 'lag grows while the peer is away')
  t.ok(Math.abs(Date.now() / 1000 - lastSync - lag) < 5, 'and is the time since the last sync')
  await eventually(async () => (one(await metricsOf(a), 'dw_peer_lag_seconds', peer) as number) > lag, 5_000, 'the lag growing')
})

t.test('who may read /metrics: admins and the metrics token; not members, strangers, or the token elsewhere', async t => {
  const a = await startTestNode(t, { dataDir: await initWithMetrics(t, { token: METRICS_TOKEN }, false) })
  const member = await addMember(a, 'maria')
  const url = `${a.node.url}/metrics`
  const none = await scrape(url)
  t.equal(none.status, 401)
  t.equal(JSON.parse(none.body).error.code, 'UNAUTHENTICATED')
  t.equal((await scrape(url, { authorization: `Bearer ${METRICS_TOKEN.replace(/.$/, 'Z')}` })).status, 401, 'a wrong token')
  t.equal((await scrape(url, member.headers)).status, 403, 'a member')
  t.equal((await scrape(url, a.admin)).status, 200, 'an admin')
  t.equal((await scrape(url, { authorization: `Bearer ${METRICS_TOKEN}` })).status, 200, 'the metrics token')
  const elsewhere = await fetch(`${a.node.url}/datasets`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  t.equal(elsewhere.status, 401, 'the metrics token opens /metrics only')

  // Without a token in config.json, only admins.
  const b = await startTestNode(t, { dataDir: await initWithMetrics(t, undefined, true) })
  t.equal((await scrape(`${b.node.url}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })).status, 401)
  t.equal((await scrape(`${b.node.url}/metrics`, b.admin)).status, 200)
})

t.test('metrics.listen: /metrics on an address of its own without authentication; the API still guards its own', async t => {
  const a = await startTestNode(t, { dataDir: await initWithMetrics(t, { listen: '127.0.0.1:0' }, false) })
  const listenUrl = a.node.metrics.listenUrl
  t.match(listenUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
  const res = await scrape(listenUrl as string)
  t.equal(res.status, 200)
  t.ok(parsePrometheusText(res.body).has('dw_ready'))
  t.equal((await fetch((listenUrl as string).replace(/\/metrics$/, '/datasets'))).status, 404, 'nothing else is served there')
  t.equal((await scrape(`${a.node.url}/metrics`)).status, 401)
  await a.node.stop()
  await t.rejects(fetch(listenUrl as string), 'the listener closes with the node')
})

t.test('refusals are counted by reason, never by peer id or message', async t => {
  const a = await startTestNode(t)
  const stranger = await startTestNode(t)
  // A site a does not trust keeps knocking: a refuses it at the gate.
  await addPeer(stranger, addressOf(a))
  await eventually(async () => (one(await metricsOf(a), 'dw_refusals_total', { reason: 'untrusted_peer' }) ?? 0) >= 1, 20_000, 'the stranger refused')
  // The audit log's batch entry stands for many refusals at once.
  await a.node.audit.append({ type: 'sync.refused', peer: stranger.node.peerId, outcome: 'error', details: { more: 250, reason: 'further refusals in the same batch' } })
  const families = await metricsOf(a)
  t.equal(one(families, 'dw_refusals_total', { reason: 'rules' }), 250)
  t.equal(one(families, 'dw_refusals_total', { reason: 'quarantine' }), 0, 'every reason is there from the start')
  for (const family of ['dw_refusals_total', 'dw_sync_errors_total', 'dw_sync_sessions_total']) {
    for (const s of families.get(family)?.samples ?? []) {
      t.notOk(Object.values(s.labels).includes(stranger.node.peerId), `${family}: an untrusted id is no label value`)
    }
  }
})

/** startNode's error; a node that starts anyway is stopped, so a broken check fails the test rather than hanging it. */
async function startError (dataDir: string): Promise<any> {
  try {
    const node = await startNode({ dataDir })
    await node.stop()
    return undefined
  } catch (err) {
    return err
  }
}

t.test('a bad "metrics" in config.json stops the start with CONFIG_INVALID', async t => {
  const dataDir = await initWithMetrics(t, undefined, false)
  const configure = async (metrics: unknown): Promise<void> => {
    const config = await readConfig(dataDir)
    await writeConfig(dataDir, { ...config, metrics } as typeof config)
  }
  for (const metrics of [{ token: 'too-short' }, { listen: 'not an address' }, { tokens: METRICS_TOKEN }, 'on']) {
    await configure(metrics)
    t.equal((await startError(dataDir))?.code, 'CONFIG_INVALID', JSON.stringify(metrics))
  }
  // The listener's port taken: the node says which setting to change, and stops what it had started.
  const other = await startTestNode(t, { dataDir: await initWithMetrics(t, { listen: '127.0.0.1:0' }, true) })
  await configure({ listen: `127.0.0.1:${new URL(other.node.metrics.listenUrl as string).port}` })
  const taken = await startError(dataDir)
  t.equal(taken?.code, 'CONFIG_INVALID')
  t.match(taken?.message, /metrics\.listen/)
  await configure({ listen: '127.0.0.1:0' })
  const again = await startTestNode(t, { dataDir })
  t.ok(again.node.metrics.listenUrl, 'with a good setting the same directory starts: nothing was left locked')
})
