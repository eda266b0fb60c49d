import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, duration, json, table } from '../output.ts'
import type { FleetRow } from '../../fleet/fleet-view.ts'

/** Exit status of `dw fleet` when any node is critical (1 stays "the command failed"). */
export const CRITICAL_EXIT = 2

/** "this node", "as of 2h 5m ago, via site-b" ("direct" from the node itself), or "never heard from". */
function asOf (row: FleetRow): string {
  if (!row.heard) return 'never heard from'
  if (row.self) return 'this node'
  const age = `as of ${duration(row.ageSeconds ?? 0)} ago`
  if (row.via === row.peerId) return `${age}, direct`
  return row.viaName === undefined ? age : `${age}, via ${row.viaName}`
}

function lag (row: FleetRow): string {
  if (row.lagSeconds === null && row.lagRecords === null) return '-'
  const parts: string[] = []
  if (row.lagSeconds !== null) parts.push(duration(row.lagSeconds))
  if (row.lagRecords !== null) parts.push(`${row.lagRecords} changes`)
  return parts.join(', ')
}

function disk (row: FleetRow): string {
  if (row.disk === null) return '-'
  const percent = row.disk.total > 0 ? ` (${Math.floor(row.disk.free / row.disk.total * 100)}%)` : ''
  return `${bytes(row.disk.free)}${percent}`
}

const orDash = (n: number | null): string => n === null ? '-' : String(n)

export function fleetCommand (): Command {
  return apiCommand('fleet', `every node of the mesh with its latest status (as of when, via which site), lag, free disk, files below target, quarantine and a verdict; exits ${CRITICAL_EXIT} when a node is critical, for cron (admins)`)
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const view = await client.request<{ rows: FleetRow[] }>('GET', '/fleet')
      if (view.rows.some(r => r.verdict === 'critical')) process.exitCode = CRITICAL_EXIT
      if (options.json === true) return json(view.rows)
      table(view.rows, [
        { header: 'NODE', value: r => r.name },
        { header: 'PEER ID', value: r => r.peerId },
        { header: 'AS OF', value: asOf },
        { header: 'LAG', value: lag },
        { header: 'FREE DISK', value: disk },
        { header: 'BELOW TARGET', value: r => orDash(r.belowTarget) },
        { header: 'QUARANTINE', value: r => orDash(r.quarantined) },
        { header: 'VERDICT', value: r => r.reasons.length === 0 ? r.verdict : `${r.verdict}: ${r.reasons.join('; ')}` }
      ], '(no nodes)')
    })
}
