import type { CheckResult, Violation } from './checker.ts'
import type { TimelineEntry } from './nemesis.ts'
import type { NetworkStats } from './network.ts'

export interface SimReport {
  seed: string
  nodes: number
  ops: number
  faults: number
  inject?: string
  /** --restore: one node restored from its own online backup mid-run. */
  restore?: boolean
  /** What was between the nodes: TCP proxies or network namespaces. */
  network: 'proxy' | 'netns'
  ok: boolean
  startedAt: string
  durationS: number
  workload: { durationS: number, outcomes: Record<string, Record<string, number>>, acked: number, unknown: number, versions: number, createdRecords: number }
  /** network: undefined when the stats could not be read. */
  nemesis: { counts: Record<string, number>, timeline: TimelineEntry[], network: NetworkStats | undefined, restarts: number }
  healAtS: number
  /** Time the final heal itself took (restarting killed nodes). */
  healTookS: number
  check: CheckResult | undefined
  error?: string
}

const s = (ms: number | null): string => ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

function describeNetwork (n: NetworkStats | undefined): string {
  if (n === undefined) return 'no network stats'
  if (n.mode === 'proxy') return `proxies: ${n.accepted} connections, ${n.refused} refused, ${n.dropped} dropped, ${mib(n.bytes)} relayed`
  return `netns: ${n.cutPackets} packets dropped by partitions, ${n.lossPackets} by loss, ${mib(n.linkBytes)} sent between nodes, delay ${n.delay === 'netem' ? 'by netem' : 'as a throttle (no netem)'}`
}

function group (violations: Violation[]): Map<string, Violation[]> {
  const out = new Map<string, Violation[]>()
  for (const v of violations) out.set(v.kind, [...(out.get(v.kind) ?? []), v])
  return out
}

/** The report a person reads: what ran, what broke, what diverged and where. */
export function renderReport (r: SimReport, options: { timeline?: boolean, maxPerKind?: number } = {}): string {
  const lines: string[] = []
  const w = r.workload
  lines.push(`dw-mesh partition simulation: seed ${r.seed}, ${r.nodes} nodes, ${r.ops} ops, ${r.faults} faults, ${r.network === 'netns' ? 'network namespaces (--netns)' : 'TCP proxies'}${r.inject !== undefined ? `, injected: ${r.inject}` : ''}${r.restore === true ? ', one node restored from a backup' : ''}`)
  lines.push(`run: ${r.durationS.toFixed(1)} s in all; workload ${w.durationS.toFixed(1)} s`)
  lines.push(`workload: ${w.acked} writes acknowledged, ${w.unknown} of unknown outcome; ${w.createdRecords} records created, ${w.versions} versions`)
  for (const [type, o] of Object.entries(w.outcomes).sort()) {
    lines.push(`  ${type.padEnd(15)} ok ${String(o.ok).padStart(5)}  rejected ${String(o.rejected).padStart(4)}  refused ${String(o.refused).padStart(4)}  unknown ${String(o.unknown).padStart(4)}`)
  }
  const counts = Object.entries(r.nemesis.counts).map(([k, v]) => `${k} ${v}`).join(', ')
  lines.push(`faults: ${counts || 'none'}; ${r.nemesis.restarts} restarts; ${describeNetwork(r.nemesis.network)}`)
  if (options.timeline === true) for (const e of r.nemesis.timeline) lines.push(`  +${e.t.toFixed(1).padStart(6)} s  ${e.action}`)
  lines.push(`final heal at +${r.healAtS.toFixed(1)} s (restarts done ${(r.healTookS ?? 0).toFixed(1)} s later); times below are from the start of the heal`)
  const c = r.check
  if (c !== undefined) {
    lines.push(`convergence: lists identical after ${s(c.convergedAfterMs)}; sync idle (all peers connected, no lag) after ${s(c.syncIdleAfterMs)}; every record identical after ${s(c.identicalAfterMs)}`)
    lines.push(`checked: ${c.records} records on every node, ${c.fieldsChecked} concurrently written fields, ${c.filesChecked} files x ${r.nodes} nodes (${c.downloads} downloads)`)
    if (c.keyOrderOnly > 0) lines.push(`note: ${c.keyOrderOnly} records read the same on every node but with object keys in another order (compared with keys sorted); e.g. ${c.keyOrderExample ?? ''}`)
    const byKind = group(c.violations)
    const kinds = ['acked-create-missing', 'acked-delete-lost', 'acked-version-missing', 'diverged', 'users-diverged', 'username-owner', 'lost-write', 'overwritten-write-visible', 'phantom-value', 'lost-tag-add', 'delete-from-nowhere', 'file-unavailable', 'file-corrupt', 'bad-read', 'node-crash', 'quarantined', 'not-converged']
    lines.push(`  acknowledged writes missing:       ${(byKind.get('acked-create-missing')?.length ?? 0) + (byKind.get('acked-delete-lost')?.length ?? 0) + (byKind.get('acked-version-missing')?.length ?? 0)}`)
    lines.push(`  records differing between nodes:   ${(byKind.get('diverged')?.length ?? 0)}${byKind.has('users-diverged') ? ' (and the account lists)' : ''}`)
    lines.push(`  username rule violations:          ${byKind.get('username-owner')?.length ?? 0}`)
    lines.push(`  concurrent-write rule violations:  ${['lost-write', 'overwritten-write-visible', 'phantom-value', 'lost-tag-add', 'delete-from-nowhere'].reduce((k, x) => k + (byKind.get(x)?.length ?? 0), 0)}`)
    lines.push(`  files not fetchable or corrupt:    ${(byKind.get('file-unavailable')?.length ?? 0) + (byKind.get('file-corrupt')?.length ?? 0) + (byKind.get('bad-read')?.length ?? 0)}`)
    lines.push(`  node crashes:                      ${byKind.get('node-crash')?.length ?? 0}`)
    lines.push(`  documents quarantined:             ${byKind.get('quarantined')?.length ?? 0}`)
    const max = options.maxPerKind ?? 10
    for (const kind of kinds) {
      const list = byKind.get(kind)
      if (list === undefined) continue
      lines.push('')
      lines.push(`${kind} (${list.length}):`)
      for (const v of list.slice(0, max)) {
        lines.push(`  - ${v.message}`)
        if (kind === 'diverged') {
          for (const d of (v.details as Array<{ nodes: number[], vsNodes: number[], status: number[], fields: Array<{ path: string, a: string, b: string }> }>)) {
            if (d.status[0] !== d.status[1]) lines.push(`      status: nodes {${d.vsNodes.join(',')}} ${d.status[0]} vs nodes {${d.nodes.join(',')}} ${d.status[1]}`)
            for (const f of d.fields) lines.push(`      ${f.path}: nodes {${d.vsNodes.join(',')}} ${f.a}  vs  nodes {${d.nodes.join(',')}} ${f.b}`)
          }
        } else if (v.details !== undefined && kind !== 'node-crash') {
          lines.push(`      ${JSON.stringify(v.details).slice(0, 400)}`)
        } else if (kind === 'node-crash') {
          lines.push(String(v.details).split('\n').slice(-12).map(l => `      | ${l}`).join('\n'))
        }
      }
      if (list.length > max) lines.push(`  ... and ${list.length - max} more (see the JSON report)`)
    }
  }
  if (r.error !== undefined) lines.push('', `ERROR: ${r.error}`)
  lines.push('', r.ok ? 'RESULT: PASS' : 'RESULT: FAIL')
  return lines.join('\n')
}
