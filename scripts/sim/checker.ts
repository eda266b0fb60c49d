import { api, download, sleep } from './client.ts'
import type { Cluster } from './cluster.ts'
import type { Ledger, WriteEvent } from './workload.ts'

export type ViolationKind =
  | 'not-converged'
  | 'diverged'
  | 'acked-create-missing'
  | 'acked-delete-lost'
  | 'delete-from-nowhere'
  | 'acked-version-missing'
  | 'lost-write'
  | 'overwritten-write-visible'
  | 'phantom-value'
  | 'lost-tag-add'
  | 'users-diverged'
  | 'username-owner'
  | 'file-unavailable'
  | 'file-corrupt'
  | 'bad-read'
  | 'node-crash'
  | 'quarantined'

export interface Violation {
  kind: ViolationKind
  /** `<kind>/<id>` of the record concerned, when there is one. */
  record?: string
  nodes?: number[]
  message: string
  details?: unknown
}

export interface CheckResult {
  /** From the final heal until every node listed the same records with the same summaries (ms), null if never. */
  convergedAfterMs: number | null
  /** From the final heal until every node reported every peer connected with no lag either way (ms), null if never. */
  syncIdleAfterMs: number | null
  /** From the final heal until the full comparison passed (ms), null if it never did. */
  identicalAfterMs: number | null
  records: number
  fieldsChecked: number
  filesChecked: number
  downloads: number
  /** Records whose JSON was equal on every node except for the order of object keys (not a violation). */
  keyOrderOnly: number
  keyOrderExample?: string
  violations: Violation[]
}

export interface CheckOptions {
  cluster: Cluster
  ledger: Ledger
  healAt: number
  convergeTimeoutMs: number
  fileTimeoutMs: number
  log: (line: string) => void
}

const KINDS = [['dataset', 'datasets'], ['model', 'models'], ['report', 'reports']] as const
const PLURAL: Record<string, string> = { dataset: 'datasets', model: 'models', report: 'reports', user: 'users' }

/**
 * Strips what is node-local by design: `present` says whether the file's
 * bytes are on this node yet, and `usernameConflict` whether this node saw
 * another account by that name first (the username rule, docs/merge-rules.md:
 * each site keeps the name for the account it saw first; checked per node
 * by `checkUsernames`).
 */
function normalise (view: any): any {
  if (view === null || typeof view !== 'object') return view
  const copy = structuredClone(view)
  for (const v of copy.versions ?? []) for (const f of v.files ?? []) delete f.present
  for (const f of copy.files ?? []) delete f.present
  if (copy.kind === 'user') delete copy.usernameConflict
  return copy
}

/** A node's account list less what is node-local (see `normalise`). */
function replicatedUsers (users: any[] | undefined): any[] | undefined {
  return users?.map(u => { const { usernameConflict: _local, ...rest } = u; return rest })
}

/** A node's username conflicts as a set: which names are contested, and by which accounts (the precedence is the node's own). */
function conflictSet (conflicts: any): string {
  const items = ((conflicts?.items ?? []) as Array<{ username: string, ids: string[] }>).map(c => ({ username: c.username, ids: [...c.ids].sort() }))
  return JSON.stringify(items.sort((a, b) => a.username < b.username ? -1 : a.username > b.username ? 1 : 0))
}

/** JSON with object keys sorted at every level: key order carries no meaning in JSON. */
export function canonical (value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
    : v)
}

/** Where two JSON texts first differ, with a little context. */
function firstDifference (a: string, b: string): string {
  let i = 0
  while (i < a.length && a[i] === b[i]) i++
  return `at char ${i}: ...${a.slice(Math.max(0, i - 60), i + 60)}... vs ...${b.slice(Math.max(0, i - 60), i + 60)}...`
}

/** Up to `limit` paths where two JSON values differ, with both values (cut short). */
export function diffPaths (a: unknown, b: unknown, path = '', out: Array<{ path: string, a: string, b: string }> = [], limit = 8): Array<{ path: string, a: string, b: string }> {
  if (out.length >= limit) return out
  const show = (v: unknown): string => { const s = JSON.stringify(v); return s === undefined ? 'undefined' : s.length > 160 ? s.slice(0, 157) + '...' : s }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)])
    for (const k of keys) diffPaths((a as any)[k], (b as any)[k], path === '' ? k : `${path}.${k}`, out, limit)
    return out
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: path === '' ? '(whole)' : path, a: show(a), b: show(b) })
  return out
}

async function listAll (cluster: Cluster, i: number, plural: string): Promise<any[] | undefined> {
  const items: any[] = []
  let cursor: string | undefined
  for (let page = 0; page < 1000; page++) {
    const res = await api(cluster.target(i), 'GET', `/${plural}?includeDeleted=true&limit=1000${cursor !== undefined ? `&cursor=${cursor}` : ''}`, { timeoutMs: 20_000 })
    if (res.outcome !== 'ok') return undefined
    items.push(...res.body.items)
    cursor = res.body.next
    if (cursor === undefined || cursor === null) return items
  }
  return items
}

async function usersOf (cluster: Cluster, i: number): Promise<any[] | undefined> {
  const res = await api(cluster.target(i), 'GET', '/users', { timeoutMs: 20_000 })
  if (res.outcome !== 'ok') return undefined
  const admin = cluster.nodes[i]?.adminUserId
  return (res.body.items as any[]).filter(u => u.id !== admin).sort((x, y) => x.id < y.id ? -1 : 1)
}

/** What a node lists: every record's summary (deleted ones too) and the replicated accounts. */
async function digest (cluster: Cluster, i: number): Promise<string | undefined> {
  const parts: unknown[] = []
  for (const [, plural] of KINDS) {
    const items = await listAll(cluster, i, plural)
    if (items === undefined) return undefined
    parts.push(items)
  }
  const users = replicatedUsers(await usersOf(cluster, i))
  if (users === undefined) return undefined
  parts.push(users)
  return JSON.stringify(parts)
}

async function syncIdle (cluster: Cluster): Promise<boolean> {
  for (let i = 0; i < cluster.size; i++) {
    const res = await api(cluster.target(i), 'GET', '/sync/status', { timeoutMs: 10_000 })
    if (res.outcome !== 'ok') return false
    for (const p of res.body.peers as any[]) {
      if (p.connected !== true || p.behindPeer !== 0 || p.peerBehind !== 0) return false
    }
  }
  return true
}

function valueAt (view: any, field: string): unknown {
  if (field.startsWith('metadata.')) return view?.metadata?.[field.slice('metadata.'.length)]
  return view?.[field]
}

/**
 * Reads every node through its HTTP API after the final heal and checks
 * the contract: every acknowledged write is everywhere, every record reads
 * the same on every node (conflicts included), concurrent writes resolve
 * the same way everywhere with the losers shown, and every file of every
 * live record can be fetched from every node.
 */
export async function check (o: CheckOptions): Promise<CheckResult> {
  const { cluster, ledger } = o
  const n = cluster.size
  const violations: Violation[] = []
  const result: CheckResult = { convergedAfterMs: null, syncIdleAfterMs: null, identicalAfterMs: null, records: 0, fieldsChecked: 0, filesChecked: 0, downloads: 0, keyOrderOnly: 0, violations }
  const deadline = o.healAt + o.convergeTimeoutMs

  // 1. Quiescence: the same lists everywhere, then sync idle (both bounded).
  let lastDigests: Array<string | undefined> = []
  while (Date.now() < deadline) {
    lastDigests = await Promise.all(Array.from({ length: n }, async (_, i) => await digest(cluster, i)))
    if (lastDigests.every(d => d !== undefined && d === lastDigests[0])) {
      result.convergedAfterMs = Date.now() - o.healAt
      break
    }
    await sleep(250)
  }
  if (result.convergedAfterMs === null) {
    violations.push({ kind: 'not-converged', message: `the nodes' record lists still differed ${Math.round(o.convergeTimeoutMs / 1000)} s after the final heal` })
  } else {
    o.log(`lists identical on all nodes ${(result.convergedAfterMs / 1000).toFixed(1)} s after the final heal`)
  }
  const idleDeadline = Math.min(deadline, Date.now() + 30_000)
  while (Date.now() < idleDeadline) {
    if (await syncIdle(cluster)) { result.syncIdleAfterMs = Date.now() - o.healAt; break }
    await sleep(250)
  }

  // 2. Every record, read whole from every node; re-read (bounded) what differs.
  const keys = new Set<string>([...ledger.created.keys(), ...ledger.deletes.keys()])
  for (const d of lastDigests) {
    if (d === undefined) continue
    const [datasets, models, reports, users] = JSON.parse(d) as any[][]
    for (const [kind, items] of [['dataset', datasets], ['model', models], ['report', reports], ['user', users]] as const) {
      for (const item of items ?? []) keys.add(`${kind}/${item.id as string}`)
    }
  }
  result.records = keys.size
  const views = new Map<string, Array<{ status: number, body: any }>>()
  const readKey = async (key: string): Promise<void> => {
    const [kind, id] = key.split('/') as [string, string]
    const path = kind === 'user' ? `/users/${id}` : `/${PLURAL[kind] as string}/${id}?includeDeleted=true`
    views.set(key, await Promise.all(Array.from({ length: n }, async (_, i) => {
      const res = await api(cluster.target(i), 'GET', path, { timeoutMs: 20_000 })
      return { status: res.status, body: res.outcome === 'ok' ? normalise(res.body) : res.body }
    })))
  }
  const differing = (): string[] => [...views].filter(([, vs]) => vs.some(v => v.status !== vs[0]?.status || canonical(v.body) !== canonical(vs[0]?.body))).map(([k]) => k)
  const all = [...keys]
  for (let at = 0; at < all.length; at += 16) await Promise.all(all.slice(at, at + 16).map(readKey))
  let diverged = differing()
  for (let round = 0; diverged.length > 0 && round < 5 && Date.now() < deadline; round++) {
    await sleep(2000)
    for (const key of diverged) await readKey(key)
    diverged = differing()
  }
  const userLists = await Promise.all(Array.from({ length: n }, async (_, i) => await usersOf(cluster, i)))
  const conflictLists = await Promise.all(Array.from({ length: n }, async (_, i) => (await api(cluster.target(i), 'GET', '/users/conflicts')).body))
  const usersSame = userLists.every(u => canonical(replicatedUsers(u)) === canonical(replicatedUsers(userLists[0]))) && conflictLists.every(c => conflictSet(c) === conflictSet(conflictLists[0]))
  checkUsernames(ledger, userLists, conflictLists, violations)
  // Same content, different key order: not a divergence, but worth knowing.
  for (const [key, vs] of views) {
    if (diverged.includes(key)) continue
    const raw = vs.map(v => JSON.stringify(v.body))
    const odd = raw.findIndex(r => r !== raw[0])
    if (odd > 0) {
      result.keyOrderOnly += 1
      if (result.keyOrderExample === undefined) result.keyOrderExample = `${key} nodes 0 and ${odd}: ${firstDifference(raw[0] as string, raw[odd] as string)}`
    }
  }
  if (diverged.length === 0 && usersSame && result.convergedAfterMs !== null) result.identicalAfterMs = Date.now() - o.healAt

  for (const key of diverged) {
    const vs = views.get(key) as Array<{ status: number, body: any }>
    const variants = new Map<string, number[]>()
    vs.forEach((v, i) => {
      const sig = `${v.status} ${canonical(v.body)}`
      variants.set(sig, [...(variants.get(sig) ?? []), i])
    })
    const groups = [...variants.values()]
    const first = groups[0]?.[0] as number
    const describe = groups.slice(1).map(g => ({
      nodes: g,
      vsNodes: groups[0],
      status: [vs[first]?.status, vs[g[0] as number]?.status],
      fields: diffPaths(vs[first]?.body, vs[g[0] as number]?.body)
    }))
    violations.push({
      kind: 'diverged',
      record: key,
      nodes: groups.flat(),
      message: `${key} reads differently: ${groups.map(g => `nodes {${g.join(',')}}`).join(' vs ')}`,
      details: describe
    })
  }
  if (!usersSame) {
    const ids = userLists.map(u => (u ?? []).map((x: any) => x.id as string))
    const union = [...new Set(ids.flat())]
    violations.push({
      kind: 'users-diverged',
      message: 'the account lists (less each node\'s local admin) or the username conflicts differ between nodes',
      details: {
        missing: union.map(id => ({ id, missingOn: ids.flatMap((l, i) => l.includes(id) ? [] : [i]) })).filter(x => x.missingOn.length > 0).slice(0, 20),
        conflicts: conflictLists
      }
    })
  }

  // 3. Acknowledged writes.
  const viewOn = (key: string, i: number): { status: number, body: any } | undefined => views.get(key)?.[i]
  const refView = (key: string): any => views.get(key)?.find(v => v.status === 200)?.body
  for (const [key, created] of ledger.created) {
    const missing = Array.from({ length: n }, (_, i) => i).filter(i => viewOn(key, i)?.status !== 200)
    if (missing.length > 0) {
      violations.push({
        kind: 'acked-create-missing',
        record: key,
        nodes: missing,
        message: `${key}, created by op ${created.op} on node ${created.node} and acknowledged, is missing on nodes {${missing.join(',')}} (status ${missing.map(i => viewOn(key, i)?.status).join(',')})`
      })
    }
    const deletes = ledger.deletes.get(key) ?? []
    const ackedDelete = deletes.find(d => d.acked)
    for (let i = 0; i < n; i++) {
      const v = viewOn(key, i)
      if (v?.status !== 200) continue
      if (ackedDelete !== undefined && v.body.deleted !== true) {
        violations.push({ kind: 'acked-delete-lost', record: key, nodes: [i], message: `${key} was deleted by op ${ackedDelete.op} on node ${ackedDelete.node} (acknowledged) but node ${i} shows it live` })
      }
      if (deletes.length === 0 && v.body.deleted === true) {
        violations.push({ kind: 'delete-from-nowhere', record: key, nodes: [i], message: `${key} reads deleted on node ${i}, but no delete was ever sent for it` })
      }
      if (created.username !== undefined && v.body.username !== created.username) {
        violations.push({ kind: 'phantom-value', record: key, nodes: [i], message: `${key} has username ${JSON.stringify(v.body.username)} on node ${i}, created as ${created.username}` })
      }
    }
  }
  for (const version of ledger.versions) {
    for (let i = 0; i < n; i++) {
      const v = viewOn(version.recordKey, i)
      const found = (v?.body?.versions as any[] | undefined)?.find(x => x.id === version.versionId)
      if (found === undefined) {
        violations.push({ kind: 'acked-version-missing', record: version.recordKey, nodes: [i], message: `version ${version.versionId} of ${version.recordKey} (op ${version.op} on node ${version.node}, acknowledged) is missing on node ${i}` })
        continue
      }
      const got = JSON.stringify((found.files as any[]).map(f => ({ name: f.name, sha256: f.sha256, size: f.size })))
      if (got !== JSON.stringify(version.files)) {
        violations.push({ kind: 'phantom-value', record: version.recordKey, nodes: [i], message: `version ${version.versionId} lists other files on node ${i}`, details: { got, sent: version.files } })
      }
    }
  }

  // 4. Concurrent writes: the same outcome everywhere (checked above), and by the rules.
  checkFields(ledger, refView, n, violations, result)

  // 5. Every file of every live record, from every node.
  await checkFiles(o, views, violations, result)

  // 6. Crashes and bad reads seen during the run.
  for (const node of cluster.nodes) {
    for (const crash of node.crashes) {
      violations.push({ kind: 'node-crash', nodes: [node.index], message: `node ${node.index} exited on its own (code ${crash.code}, signal ${crash.signal})`, details: crash.log.slice(-1500) })
    }
  }
  for (const bad of ledger.badReads) violations.push({ kind: 'bad-read', nodes: [bad.node], message: `op ${bad.op} on node ${bad.node}: ${bad.what}: ${bad.detail}` })

  // 7. Honest nodes send nothing worth quarantining: an entry is a false
  // alarm that keeps a record out for good (a node stopped mid-load did that).
  for (let i = 0; i < n; i++) {
    const res = await api(cluster.target(i), 'GET', '/quarantine', { timeoutMs: 20_000 })
    for (const entry of (res.body?.items ?? []) as Array<{ key: string, reason: string }>) {
      violations.push({ kind: 'quarantined', record: entry.key, nodes: [i], message: `node ${i} quarantined ${entry.key}: ${entry.reason}` })
    }
  }
  return result
}

/**
 * The username rule, per node: every contested name has exactly one owner
 * there (the first account in that node's conflict list, not flagged; the
 * others flagged), nothing else is flagged, and a node that acknowledged
 * creating an account keeps the name for it while it lives (it refused the
 * name if it already resolved it to another account, so it saw that one first).
 */
function checkUsernames (ledger: Ledger, userLists: Array<any[] | undefined>, conflictLists: any[], violations: Violation[]): void {
  userLists.forEach((users, i) => {
    if (users === undefined) return
    const byId = new Map(users.map(u => [u.id as string, u]))
    const owners = new Map<string, string>()
    const contested = new Set<string>()
    for (const c of (conflictLists[i]?.items ?? []) as Array<{ username: string, ids: string[] }>) {
      owners.set(c.username, c.ids[0] as string)
      c.ids.forEach((id, at) => {
        contested.add(id)
        const flagged = byId.get(id)?.usernameConflict
        if (flagged !== (at > 0)) {
          violations.push({ kind: 'username-owner', record: `user/${id}`, nodes: [i], message: `node ${i}: account ${id}, ${at === 0 ? 'first' : `number ${at + 1}`} for the contested name ${c.username}, has usernameConflict ${String(flagged)}` })
        }
      })
    }
    for (const u of users) {
      if (u.usernameConflict === true && !contested.has(u.id)) violations.push({ kind: 'username-owner', record: `user/${u.id as string}`, nodes: [i], message: `node ${i}: account ${u.id as string} is flagged, but its name ${JSON.stringify(u.username)} is not in the node's conflict list` })
    }
    for (const [key, created] of ledger.created) {
      if (created.kind !== 'user' || created.node !== i || created.username === undefined) continue
      const id = key.slice('user/'.length)
      const user = byId.get(id)
      if (user === undefined || user.deleted === true) continue
      const owner = owners.get(String(user.username).normalize('NFKC').toLowerCase())
      if (owner !== undefined && owner !== id) {
        violations.push({ kind: 'username-owner', record: key, nodes: [i], message: `node ${i} acknowledged creating ${key} as ${JSON.stringify(created.username)} (op ${created.op}), yet now resolves that name to account ${owner}` })
      }
    }
  })
}

/**
 * Field rules, from client-side times only (a write was applied somewhere
 * between its request being sent and its answer arriving):
 * - a visible value (winner or under `conflicts`) was written by someone;
 * - a write W that nobody could have seen before overwriting it (every other
 *   write to the field was answered before W was sent) must still be visible;
 * - a write overwritten on the node that made it (a later write there, sent
 *   after W was answered) must not be visible any more;
 * - a tag added last, after every other add/remove of it was answered, is present.
 * Written values are unique per op, so a "no change" write cannot occur.
 */
function checkFields (ledger: Ledger, refView: (key: string) => any, _n: number, violations: Violation[], result: CheckResult): void {
  for (const [slot, events] of ledger.writes) {
    const [key, field] = slot.split('|') as [string, string]
    const view = refView(key)
    if (view === undefined || field === 'description') continue
    result.fieldsChecked += 1
    const isAfterAll = (w: WriteEvent): boolean => events.every(x => x === w || x.end < w.start)
    if (field.startsWith('tag:')) {
      const tag = field.slice(4)
      const present = (view.tags as string[]).includes(tag)
      if (present && !events.some(e => e.value === 'add')) {
        violations.push({ kind: 'phantom-value', record: key, message: `${key} has tag ${tag} that nobody added` })
      }
      const last = events.find(w => w.acked && w.value === 'add' && isAfterAll(w))
      if (last !== undefined && !present) {
        violations.push({ kind: 'lost-tag-add', record: key, message: `${key} lacks tag ${tag}, added by op ${last.op} on node ${last.node} after every other change to that tag was answered` })
      }
      continue
    }
    const winner = valueAt(view, field)
    const visible = [winner, ...((view.conflicts?.[field] as unknown[] | undefined) ?? [])].filter(v => v !== undefined)
    const written = new Set(events.map(e => e.value))
    for (const v of visible) {
      if (!written.has(v as string)) violations.push({ kind: 'phantom-value', record: key, message: `${key} ${field} shows ${JSON.stringify(v)}, which no write sent`, details: { visible } })
    }
    for (const w of events) {
      if (!w.acked) continue
      if (isAfterAll(w) && !visible.includes(w.value)) {
        violations.push({
          kind: 'lost-write',
          record: key,
          nodes: [w.node],
          message: `${key} ${field}: op ${w.op}'s value ${JSON.stringify(w.value)} (acknowledged by node ${w.node}, sent after every other write to the field was answered) is neither the value nor under conflicts`,
          details: { visible }
        })
      }
      const overwrittenBy = events.find(x => x !== w && x.acked && x.node === w.node && x.start > w.end)
      if (overwrittenBy !== undefined && visible.includes(w.value)) {
        violations.push({
          kind: 'overwritten-write-visible',
          record: key,
          nodes: [w.node],
          message: `${key} ${field}: op ${w.op}'s value ${JSON.stringify(w.value)} is still visible although op ${overwrittenBy.op} overwrote it later on the same node ${w.node}`,
          details: { visible }
        })
      }
    }
  }
}

async function checkFiles (o: CheckOptions, views: Map<string, Array<{ status: number, body: any }>>, violations: Violation[], result: CheckResult): Promise<void> {
  const { cluster, ledger } = o
  const expected = new Map<string, string>()
  for (const v of ledger.versions) for (const f of v.files) expected.set(`${v.recordKey}|${v.versionId}|${f.name}`, f.sha256)
  const jobs: Array<{ key: string, versionId: string, name: string, sha256: string }> = []
  for (const [key, vs] of views) {
    const view = vs.find(v => v.status === 200)?.body
    if (view === undefined || view.deleted === true || key.startsWith('user/') || key.startsWith('report/')) continue
    for (const version of view.versions ?? []) {
      for (const f of version.files ?? []) jobs.push({ key, versionId: version.id, name: f.name, sha256: f.sha256 })
    }
  }
  result.filesChecked = jobs.length
  const deadline = Date.now() + o.fileTimeoutMs
  const tasks = jobs.flatMap(job => Array.from({ length: cluster.size }, (_, i) => ({ job, i })))
  let next = 0
  const worker = async (): Promise<void> => {
    while (true) {
      const task = tasks[next++]
      if (task === undefined) return
      const { job, i } = task
      const [kind, id] = job.key.split('/') as [string, string]
      const path = `/${PLURAL[kind] as string}/${id}/versions/${job.versionId}/files/${encodeURIComponent(job.name)}`
      let last: Awaited<ReturnType<typeof download>> = { status: 0 }
      // 503: the bytes are on their way from a peer; ask again shortly (bounded).
      while (true) {
        last = await download(cluster.target(i), path)
        result.downloads += 1
        if (last.status !== 503 && last.status !== 0) break
        if (Date.now() > deadline) break
        await sleep(500)
      }
      const want = expected.get(`${job.key}|${job.versionId}|${job.name}`) ?? job.sha256
      if (last.status !== 200) {
        violations.push({ kind: 'file-unavailable', record: job.key, nodes: [i], message: `${job.name} of version ${job.versionId} of ${job.key} cannot be fetched from node ${i}: ${last.status} ${last.error ?? ''}` })
      } else if (last.sha256 !== want || want !== job.sha256) {
        violations.push({ kind: 'file-corrupt', record: job.key, nodes: [i], message: `${job.name} of version ${job.versionId} of ${job.key} from node ${i} has sha256 ${last.sha256}, expected ${want}` })
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
}
