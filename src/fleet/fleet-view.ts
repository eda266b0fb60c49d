import type { PeerLag, StatusBody } from './status-record.ts'
import type { FleetSettings } from './thresholds.ts'

export type Verdict = 'healthy' | 'warning' | 'critical'

/** One node of the mesh as this node sees it (`GET /fleet`, `dw fleet`). */
export interface FleetRow {
  peerId: string
  /** The roster's name for it, else the name it gives itself, else a short peer id. */
  name: string
  role: string
  self: boolean
  heard: boolean
  /** When the status was made (origin's clock, never later than it arrived here). */
  asOf?: string
  ageSeconds?: number
  receivedAt?: string
  /** The peer it came through, and that peer's name; absent for this node's own. */
  via?: string
  viaName?: string
  version?: string
  startedAt?: string
  /** Its freshest link: the smallest lag over its peers (see `rowLag`); null: no link known. */
  lagSeconds: number | null
  lagRecords: number | null
  disk: { free: number, total: number } | null
  belowTarget: number | null
  quarantined: number | null
  ready: boolean | null
  notReady?: string[]
  lastBackup: { at: string, ok: boolean } | null
  records?: StatusBody['records']
  blobBytes?: number
  peers?: PeerLag[]
  peersTotal?: number
  verdict: Verdict
  /** Why the verdict is not healthy, worst first. */
  reasons: string[]
}

export interface FleetMember { peerId: string, name: string, role: string }

export interface KnownStatus {
  node: string
  seq: number
  body: StatusBody
  /** null: this node's own. */
  via: string | null
  receivedAt: number
}

export interface FleetInput {
  self: string
  /** The roster's non-revoked members; this node is shown even when it is not (yet) in one. */
  members: FleetMember[]
  /** This node's own status, made now. */
  own: StatusBody
  /** Statuses held from other nodes. */
  held: KnownStatus[]
  settings: FleetSettings
  now: number
}

/**
 * A node's lag behind the rest of the mesh: data hops, so it is as far
 * behind as its freshest link. The smallest lag over its peers, in seconds
 * and (separately) in changes; null when it has no link whose lag is known.
 * A link that is down shows in the row of the node at its other end too.
 */
export function rowLag (peers: PeerLag[]): { lagSeconds: number | null, lagRecords: number | null } {
  const min = (values: Array<number | null>): number | null => {
    const known = values.filter((v): v is number => v !== null)
    return known.length === 0 ? null : Math.min(...known)
  }
  return { lagSeconds: min(peers.map(p => p.lagSeconds)), lagRecords: min(peers.map(p => p.lagRecords)) }
}

function human (seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`
  return `${Math.round(seconds / 86_400)}d`
}

function gib (bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`
}

/**
 * Judges one node's status by the thresholds: the verdict is the worst of
 * its findings. Checked: age of the status (not heard from), lag of its
 * freshest link (seconds and changes), free disk, files below their copy
 * target, quarantine, readiness (not ready: critical) and the last backup
 * (failed: warning).
 */
export function judge (s: FleetSettings, row: Pick<FleetRow, 'ageSeconds' | 'lagSeconds' | 'lagRecords' | 'disk' | 'belowTarget' | 'quarantined' | 'ready' | 'notReady' | 'lastBackup'>): { verdict: Verdict, reasons: string[] } {
  const critical: string[] = []
  const warning: string[] = []
  const over = (value: number | null | undefined, crit: number | null, warn: number | null, say: () => string): void => {
    if (value === null || value === undefined) return
    if (crit !== null && value >= crit) critical.push(say())
    else if (warn !== null && value >= warn) warning.push(say())
  }
  if (row.ageSeconds !== undefined) over(row.ageSeconds * 1000, s.criticalAfterMs, s.warnAfterMs, () => `not heard from for ${human(row.ageSeconds as number)}`)
  over(row.lagSeconds === null ? null : row.lagSeconds * 1000, s.criticalLagMs, s.warnLagMs, () => `lags ${human(row.lagSeconds as number)} behind its freshest peer`)
  over(row.lagRecords, s.criticalLagRecords, s.warnLagRecords, () => `${row.lagRecords as number} changes behind its freshest peer`)
  if (row.disk !== null && row.disk.total > 0) {
    const { free, total } = row.disk
    const floor = (bytes: number | null, percent: number | null): number | null =>
      bytes === null && percent === null ? null : Math.max(bytes ?? 0, percent === null ? 0 : total * percent / 100)
    const crit = floor(s.criticalFreeBytes, s.criticalFreePercent)
    const warn = floor(s.warnFreeBytes, s.warnFreePercent)
    const say = `${gib(free)} free of ${gib(total)}`
    if (crit !== null && free < crit) critical.push(`disk nearly full: ${say}`)
    else if (warn !== null && free < warn) warning.push(`disk filling: ${say}`)
  }
  over(row.belowTarget, s.criticalBelowTarget, s.warnBelowTarget, () => `${row.belowTarget as number} file${row.belowTarget === 1 ? '' : 's'} below copy target`)
  over(row.quarantined, s.criticalQuarantined, s.warnQuarantined, () => `${row.quarantined as number} document${row.quarantined === 1 ? '' : 's'} in quarantine`)
  if (row.ready === false) critical.push(`not ready${row.notReady === undefined || row.notReady.length === 0 ? '' : `: ${row.notReady.join('; ')}`}`)
  if (row.lastBackup?.ok === false) warning.push('last backup failed')
  return { verdict: critical.length > 0 ? 'critical' : warning.length > 0 ? 'warning' : 'healthy', reasons: [...critical, ...warning] }
}

/**
 * Every member node with its latest status and verdict. A node never
 * heard from is critical, whatever the thresholds: nothing says it works.
 */
export function fleetRows (input: FleetInput): FleetRow[] {
  const { self, settings, now } = input
  const byNode = new Map(input.held.filter(h => h.node !== self).map(h => [h.node, h]))
  const members = input.members.some(m => m.peerId === self) ? input.members : [{ peerId: self, name: input.own.name, role: 'not in a mesh roster' }, ...input.members]
  const names = new Map<string, string>()
  for (const m of members) {
    const told = m.peerId === self ? input.own.name : byNode.get(m.peerId)?.body.name
    names.set(m.peerId, m.name !== '' ? m.name : told ?? m.peerId.slice(-8))
  }
  const rows = members.map((m): FleetRow => {
    const mine = m.peerId === self
    const known = mine ? { node: self, seq: now, body: input.own, via: null, receivedAt: now } : byNode.get(m.peerId)
    const name = names.get(m.peerId) as string
    if (known === undefined) {
      return { peerId: m.peerId, name, role: m.role, self: false, heard: false, lagSeconds: null, lagRecords: null, disk: null, belowTarget: null, quarantined: null, ready: null, lastBackup: null, verdict: 'critical', reasons: ['never heard from'] }
    }
    const b = known.body
    // The origin's clock may run ahead: a status is never taken as made later than it arrived here.
    const asOf = Math.min(known.seq, known.receivedAt)
    const row: Omit<FleetRow, 'verdict' | 'reasons'> = {
      peerId: m.peerId,
      name,
      role: m.role,
      self: mine,
      heard: true,
      asOf: new Date(asOf).toISOString(),
      ageSeconds: Math.max(0, Math.round((now - asOf) / 1000)),
      receivedAt: new Date(known.receivedAt).toISOString(),
      version: b.version,
      startedAt: new Date(b.startedAt).toISOString(),
      ...rowLag(b.peers),
      disk: b.disk,
      belowTarget: b.belowTarget,
      quarantined: b.quarantined,
      ready: b.ready,
      lastBackup: b.lastBackup === null ? null : { at: new Date(b.lastBackup.at).toISOString(), ok: b.lastBackup.ok },
      records: b.records,
      blobBytes: b.blobBytes,
      peers: b.peers,
      peersTotal: b.peersTotal
    }
    if (b.notReady !== undefined) row.notReady = b.notReady
    if (known.via !== null) {
      row.via = known.via
      row.viaName = names.get(known.via) ?? known.via.slice(-8)
    }
    return { ...row, ...judge(settings, row) }
  })
  // This node first, then by name.
  return rows.sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name) || a.peerId.localeCompare(b.peerId))
}
