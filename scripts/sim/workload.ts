import { createHash } from 'node:crypto'
import { api, sleep, type ApiResult, type Outcome } from './client.ts'
import type { Cluster } from './cluster.ts'
import { Prng } from './prng.ts'

/** A dataset the plan refers to: one of the hot records made at set-up, or the one an earlier create op made. */
export type Ref = { hot: number } | { op: number }

export interface PlannedFile { name: string, size: number }

export type Op =
  | { n: number, node: number, type: 'create-dataset', name: string, description: string, tags: string[], metadata: Record<string, string> }
  | { n: number, node: number, type: 'create-model', name: string, framework: string }
  | { n: number, node: number, type: 'create-report', hot: number, title: string }
  | { n: number, node: number, type: 'add-version', target: Ref, files: PlannedFile[] }
  | { n: number, node: number, type: 'patch', target: Ref, patch: Patch }
  | { n: number, node: number, type: 'delete-dataset', target: Ref }
  | { n: number, node: number, type: 'create-user', username: string }
  | { n: number, node: number, type: 'delete-user', target: number }
  | { n: number, node: number, type: 'read', what: 'record' | 'list' | 'file', target: Ref }

export interface Patch {
  name?: string
  description?: string
  metadata?: Record<string, string>
  addTags?: string[]
  removeTags?: string[]
}

export const HOT_TAGS = ['red', 'green', 'blue', 'amber', 'grey']
export const HOT_META_KEYS = ['site', 'team', 'status', 'unit']
const CONTESTED = ['contested-a', 'contested-b', 'contested-c']

const WEIGHTS = {
  'create-dataset': 15,
  'create-model': 4,
  'create-report': 3,
  'add-version': 12,
  'patch-hot': 34,
  'patch-own': 6,
  'delete-dataset': 6,
  'create-user': 3,
  'contested-user': 1,
  'delete-user': 1,
  read: 15
} as const

/**
 * The whole workload as data, drawn from the seed before anything runs:
 * the same seed gives the same operations on the same nodes in the same
 * order (what each one meets depends on timing and faults, and is recorded).
 */
export function planWorkload (rng: Prng, options: { ops: number, nodes: number, hot: number, seed: string }): Op[] {
  const ops: Op[] = []
  const datasets: number[] = []
  const users: number[] = []
  const ref = (): Ref => datasets.length === 0 || rng.chance(0.25)
    ? { hot: rng.int(options.hot) }
    // Recent datasets more often: they are the ones in flight across a partition.
    : { op: datasets[Math.max(0, datasets.length - 1 - Math.floor(datasets.length * rng.next() ** 3))] as number }
  const own = (): Ref | undefined => datasets.length === 0 ? undefined : { op: rng.pick(datasets.slice(-40)) }
  for (let n = 0; n < options.ops; n++) {
    const node = rng.int(options.nodes)
    const kind = rng.weighted(WEIGHTS)
    switch (kind) {
      case 'create-dataset':
        datasets.push(n)
        ops.push({
          n,
          node,
          type: 'create-dataset',
          name: `ds-${n} ${rng.word()}`,
          description: `dataset ${n}: ${rng.word()} ${rng.word()}`,
          tags: rng.shuffle(HOT_TAGS).slice(0, rng.int(3)),
          metadata: rng.chance(0.5) ? { [rng.pick(HOT_META_KEYS)]: `v${n}` } : {}
        })
        break
      case 'create-model':
        ops.push({ n, node, type: 'create-model', name: `model-${n}`, framework: rng.pick(['torch', 'sklearn', 'xgboost']) })
        break
      case 'create-report':
        ops.push({ n, node, type: 'create-report', hot: rng.int(options.hot), title: `report-${n}` })
        break
      case 'add-version': {
        const files = Array.from({ length: rng.chance(0.3) ? 2 : 1 }, (_, k) => ({ name: `f${n}-${k}.${rng.pick(['csv', 'bin', 'json'])}`, size: rng.between(16, 6000) }))
        ops.push({ n, node, type: 'add-version', target: ref(), files })
        break
      }
      case 'patch-hot':
        ops.push({ n, node, type: 'patch', target: { hot: rng.int(options.hot) }, patch: hotPatch(rng, n) })
        break
      case 'patch-own': {
        const target = own()
        if (target === undefined) { ops.push({ n, node, type: 'patch', target: { hot: rng.int(options.hot) }, patch: hotPatch(rng, n) }); break }
        ops.push({ n, node, type: 'patch', target, patch: rng.chance(0.5) ? { name: `renamed-${n}` } : { metadata: { [rng.pick(HOT_META_KEYS)]: `v${n}` }, addTags: [rng.pick(HOT_TAGS)] } })
        break
      }
      case 'delete-dataset': {
        const target = own()
        if (target === undefined) { ops.push({ n, node, type: 'read', what: 'list', target: { hot: 0 } }); break }
        ops.push({ n, node, type: 'delete-dataset', target })
        break
      }
      case 'create-user':
        users.push(n)
        ops.push({ n, node, type: 'create-user', username: `u${options.seed}-${n}` })
        break
      case 'contested-user':
        users.push(n)
        ops.push({ n, node, type: 'create-user', username: rng.pick(CONTESTED) })
        break
      case 'delete-user':
        if (users.length === 0) { ops.push({ n, node, type: 'read', what: 'list', target: { hot: 0 } }); break }
        ops.push({ n, node, type: 'delete-user', target: rng.pick(users) })
        break
      case 'read':
        ops.push({ n, node, type: 'read', what: rng.pick(['record', 'record', 'list', 'file', 'file'] as const), target: ref() })
        break
    }
  }
  return ops
}

function hotPatch (rng: Prng, n: number): Patch {
  const patch: Patch = {}
  const fields = rng.chance(0.2) ? 2 : 1
  for (let k = 0; k < fields; k++) {
    const field = rng.weighted({ name: 25, description: 20, metadata: 25, tags: 30 })
    if (field === 'name') patch.name = `hot name op ${n}`
    else if (field === 'description') patch.description = `${rng.word()} ${rng.word()} (op ${n}) ${rng.word()}`
    else if (field === 'metadata') patch.metadata = { [rng.pick(HOT_META_KEYS)]: `op ${n}` }
    else if (rng.chance(0.6)) patch.addTags = [rng.pick(HOT_TAGS)]
    else patch.removeTags = [rng.pick(HOT_TAGS)]
  }
  return patch
}

/** One write as the client saw it: sent at `start`, answered at `end` (Infinity when the answer never came). */
export interface WriteEvent { op: number, node: number, value: string, start: number, end: number, acked: boolean }

export interface AckedVersion { op: number, node: number, recordKey: string, versionId: string, files: Array<{ name: string, sha256: string, size: number }> }

/**
 * Every write the workload made, acknowledged or of unknown outcome, with
 * what it implies. Refused and rejected writes are counted but imply nothing.
 */
export class Ledger {
  /** Records whose create was acknowledged: they must exist on every node. */
  readonly created = new Map<string, { op: number, node: number, kind: string, username?: string }>()
  /** Acknowledged (acked: true) and unknown-outcome (acked: false) deletes per record. */
  readonly deletes = new Map<string, WriteEvent[]>()
  readonly versions: AckedVersion[] = []
  /** Writes per `<record key>|<field>` (name, description, metadata.<k>) and per `<record key>|tag:<t>` (value "add" or "remove"). */
  readonly writes = new Map<string, WriteEvent[]>()
  /** Ops whose create had an unknown outcome: a record the ledger cannot name may exist. */
  unknownCreates = 0
  /** Reads that returned something other than what was written (file bytes with the wrong hash). */
  readonly badReads: Array<{ op: number, node: number, what: string, detail: string }> = []
  /** Op number -> id of the record it created. */
  readonly idOfOp = new Map<number, string>()
  readonly outcomes: Record<string, Record<Outcome, number>> = {}

  count (type: string, outcome: Outcome): void {
    this.outcomes[type] ??= { ok: 0, rejected: 0, refused: 0, unknown: 0 }
    ;(this.outcomes[type] as Record<Outcome, number>)[outcome] += 1
  }

  write (key: string, event: WriteEvent): void {
    const list = this.writes.get(key) ?? []
    list.push(event)
    this.writes.set(key, list)
  }

  /** Records a create's initial field values as writes, so later rules see them. */
  initialWrites (recordKey: string, e: Omit<WriteEvent, 'value'>, fields: { name?: string, metadata?: Record<string, string>, tags?: string[] }): void {
    if (fields.name !== undefined) this.write(`${recordKey}|name`, { ...e, value: fields.name })
    for (const [k, v] of Object.entries(fields.metadata ?? {})) this.write(`${recordKey}|metadata.${k}`, { ...e, value: v })
    for (const t of fields.tags ?? []) this.write(`${recordKey}|tag:${t}`, { ...e, value: 'add' })
  }
}

export interface WorkloadOptions {
  cluster: Cluster
  plan: Op[]
  hot: string[]
  ledger: Ledger
  seed: string
  concurrency: number
  /** Resolves when op n may be dispatched (the nemesis keeps workload and faults in step). */
  gate: (n: number) => Promise<void>
  onDispatched: (n: number) => void
  signal: AbortSignal
  log: (line: string) => void
}

function fileBytes (seed: string, op: number, file: PlannedFile): Uint8Array {
  return new Prng(`${seed}:file:${op}:${file.name}`).bytes(file.size)
}

/** Runs the plan against the cluster's HTTP APIs, `concurrency` requests at a time, filling the ledger. */
export async function runWorkload (o: WorkloadOptions): Promise<void> {
  const { cluster, ledger } = o
  let next = 0
  const recordKeyOf = (ref: Ref): string | undefined => {
    if ('hot' in ref) return `dataset/${o.hot[ref.hot] as string}`
    const id = ledger.idOfOp.get(ref.op)
    return id === undefined ? undefined : `dataset/${id}`
  }
  const nodeFor = async (planned: number): Promise<number> => {
    for (let attempt = 0; attempt < 100 && !o.signal.aborted; attempt++) {
      for (let k = 0; k < cluster.size; k++) {
        const i = (planned + k) % cluster.size
        if (cluster.isUp(i)) return i
      }
      await sleep(100, o.signal)
    }
    return planned
  }

  const execute = async (op: Op): Promise<void> => {
    const i = await nodeFor(op.node)
    const node = cluster.nodes[i]
    // Counted so a restore can wait until the node has answered everything sent to it before its backup.
    if (node !== undefined) node.inflight += 1
    try {
      await send(op, i)
    } finally {
      if (node !== undefined) node.inflight -= 1
    }
  }

  const send = async (op: Op, i: number): Promise<void> => {
    const t = cluster.target(i)
    const done = (res: ApiResult): { acked: boolean, end: number } => {
      ledger.count(op.type, res.outcome)
      return { acked: res.outcome === 'ok', end: res.outcome === 'ok' ? res.end : Infinity }
    }
    /** A delete the node may have applied (acknowledged or of unknown outcome) goes in the ledger. */
    const deleted = (key: string, res: ApiResult): void => {
      const { acked, end } = done(res)
      if (res.outcome === 'rejected' || res.outcome === 'refused') return
      const list = ledger.deletes.get(key) ?? []
      list.push({ op: op.n, node: i, value: 'delete', start: res.start, end, acked })
      ledger.deletes.set(key, list)
    }
    switch (op.type) {
      case 'create-dataset': {
        const res = await api(t, 'POST', '/datasets', { json: { name: op.name, description: op.description, tags: op.tags, metadata: op.metadata }, signal: o.signal })
        const { acked } = done(res)
        if (res.outcome === 'unknown') ledger.unknownCreates += 1
        if (!acked) return
        const key = `dataset/${res.body.id as string}`
        ledger.idOfOp.set(op.n, res.body.id)
        ledger.created.set(key, { op: op.n, node: i, kind: 'dataset' })
        ledger.initialWrites(key, { op: op.n, node: i, start: res.start, end: res.end, acked: true }, { name: op.name, metadata: op.metadata, tags: op.tags })
        return
      }
      case 'create-model': {
        const res = await api(t, 'POST', '/models', { json: { name: op.name, framework: op.framework }, signal: o.signal })
        done(res)
        if (res.outcome === 'unknown') ledger.unknownCreates += 1
        if (res.outcome === 'ok') ledger.created.set(`model/${res.body.id as string}`, { op: op.n, node: i, kind: 'model' })
        return
      }
      case 'create-report': {
        const res = await api(t, 'POST', '/reports', {
          json: { reportKind: 'bias', title: op.title, subject: { kind: 'dataset', id: o.hot[op.hot] }, body: { score: op.n } },
          signal: o.signal
        })
        done(res)
        if (res.outcome === 'unknown') ledger.unknownCreates += 1
        if (res.outcome === 'ok') ledger.created.set(`report/${res.body.id as string}`, { op: op.n, node: i, kind: 'report' })
        return
      }
      case 'add-version': {
        const key = recordKeyOf(op.target)
        if (key === undefined) { ledger.count(op.type, 'rejected'); return }
        const form = new FormData()
        form.append('note', `op ${op.n}`)
        const expected = op.files.map(f => {
          const bytes = fileBytes(o.seed, op.n, f)
          form.append('file', new Blob([Buffer.from(bytes)]), f.name)
          return { name: f.name, sha256: createHash('sha256').update(bytes).digest('hex'), size: f.size }
        })
        const res = await api(t, 'POST', `/${key.replace('dataset/', 'datasets/')}/versions`, { form, signal: o.signal, timeoutMs: 30_000 })
        done(res)
        if (res.outcome !== 'ok') return
        const got = (res.body.files as Array<{ name: string, sha256: string, size: number }>).map(f => ({ name: f.name, sha256: f.sha256, size: f.size }))
        if (JSON.stringify(got) !== JSON.stringify(expected)) {
          ledger.badReads.push({ op: op.n, node: i, what: `version upload ${key}`, detail: `stored ${JSON.stringify(got)}, sent ${JSON.stringify(expected)}` })
        }
        ledger.versions.push({ op: op.n, node: i, recordKey: key, versionId: res.body.id, files: expected })
        return
      }
      case 'patch': {
        const key = recordKeyOf(op.target)
        if (key === undefined) { ledger.count(op.type, 'rejected'); return }
        const res = await api(t, 'PATCH', `/${key.replace('dataset/', 'datasets/')}`, { json: op.patch, signal: o.signal })
        const { acked, end } = done(res)
        if (res.outcome === 'rejected' || res.outcome === 'refused') return
        const e = { op: op.n, node: i, start: res.start, end, acked }
        if (op.patch.name !== undefined) ledger.write(`${key}|name`, { ...e, value: op.patch.name })
        if (op.patch.description !== undefined) ledger.write(`${key}|description`, { ...e, value: op.patch.description })
        for (const [k, v] of Object.entries(op.patch.metadata ?? {})) ledger.write(`${key}|metadata.${k}`, { ...e, value: v })
        for (const tag of op.patch.addTags ?? []) ledger.write(`${key}|tag:${tag}`, { ...e, value: 'add' })
        for (const tag of op.patch.removeTags ?? []) ledger.write(`${key}|tag:${tag}`, { ...e, value: 'remove' })
        return
      }
      case 'delete-dataset': {
        const key = recordKeyOf(op.target)
        if (key === undefined) { ledger.count(op.type, 'rejected'); return }
        deleted(key, await api(t, 'DELETE', `/${key.replace('dataset/', 'datasets/')}`, { signal: o.signal }))
        return
      }
      case 'create-user': {
        const res = await api(t, 'POST', '/users', { json: { username: op.username, password: `password for ${op.username}`, role: 'member' }, signal: o.signal, timeoutMs: 30_000 })
        done(res)
        if (res.outcome === 'unknown') ledger.unknownCreates += 1
        if (res.outcome !== 'ok') return
        ledger.idOfOp.set(op.n, res.body.id)
        ledger.created.set(`user/${res.body.id as string}`, { op: op.n, node: i, kind: 'user', username: op.username })
        return
      }
      case 'delete-user': {
        const id = ledger.idOfOp.get(op.target)
        if (id === undefined) { ledger.count(op.type, 'rejected'); return }
        const key = `user/${id}`
        deleted(key, await api(t, 'DELETE', `/users/${id}`, { signal: o.signal }))
        return
      }
      case 'read': {
        const key = recordKeyOf(op.target)
        if (op.what === 'list' || key === undefined) {
          done(await api(t, 'GET', '/datasets?limit=50', { signal: o.signal }))
          return
        }
        if (op.what === 'record') {
          done(await api(t, 'GET', `/${key.replace('dataset/', 'datasets/')}`, { signal: o.signal }))
          return
        }
        const versions = ledger.versions.filter(v => v.recordKey === key)
        const version = versions.at(-1)
        const file = version?.files[0]
        if (version === undefined || file === undefined) {
          done(await api(t, 'GET', `/${key.replace('dataset/', 'datasets/')}`, { signal: o.signal }))
          return
        }
        const path = `/${key.replace('dataset/', 'datasets/')}/versions/${version.versionId}/files/${encodeURIComponent(file.name)}`
        const started = Date.now()
        const res = await fetch(`${t.url}${path}`, { headers: { authorization: `Bearer ${t.token}` }, signal: AbortSignal.any([AbortSignal.timeout(15_000), o.signal]) })
          .then(async r => ({ status: r.status, bytes: Buffer.from(await r.arrayBuffer()) }))
          .catch(() => undefined)
        ledger.count('read-file', res === undefined ? 'unknown' : res.status === 200 ? 'ok' : 'rejected')
        if (res?.status === 200) {
          const sha = createHash('sha256').update(res.bytes).digest('hex')
          if (sha !== file.sha256) ledger.badReads.push({ op: op.n, node: i, what: path, detail: `got sha256 ${sha} (${res.bytes.length} bytes) after ${Date.now() - started} ms, expected ${file.sha256}` })
        }
        return
      }
    }
  }

  const worker = async (): Promise<void> => {
    while (!o.signal.aborted) {
      const n = next++
      const op = o.plan[n]
      if (op === undefined) return
      await o.gate(n)
      if (o.signal.aborted) return
      o.onDispatched(n)
      try {
        await execute(op)
      } catch (err) {
        o.log(`op ${n} (${op.type}) threw: ${(err as Error).message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, worker))
}
