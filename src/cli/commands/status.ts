import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, duration, fields, json, table } from '../output.ts'
import { peerTable, type PeerStatus } from './peer.ts'

/** A blob coming from a peer (Transfer on the node): the peer and total are unknown until a source answers. */
interface Transfer { sha256: string, peer?: string, done: number, total?: number }

interface SyncStatus {
  addresses?: string[]
  peers?: PeerStatus[]
  transfers?: Transfer[]
  /** Files this node wants (pinned, or asked for) that no connected peer has yet. */
  wanted?: Array<{ sha256: string, size: number, waiting?: string }>
  blobBytesOut?: number
  /** Files of live records held by fewer sites than their copy target (docs/files.md, "Copies"). */
  copies?: CopyStatus
}

interface CopyStatus {
  checkedAt?: string
  belowTarget: number
  files: Array<{ sha256: string, size: number, record: string, name: string, target: number, copies: number }>
  fetching: boolean
  blocked?: string
}

/** How many files are below their copy target, and the first few. */
function printCopies (copies: CopyStatus | undefined): void {
  if (copies === undefined) return
  const note = copies.checkedAt === undefined ? ' (not checked yet)' : ''
  process.stdout.write(`
files below their copy target: ${copies.belowTarget}${note}${copies.fetching ? '' : ' (this node does not fetch copies: files.copy is false)'}${copies.blocked === undefined ? '' : `; not fetching: ${copies.blocked}`}
`)
  if (copies.files.length === 0) return
  table(copies.files, [
    { header: 'FILE SHA256', value: f => f.sha256 },
    { header: 'SIZE', value: f => bytes(f.size) },
    { header: 'RECORD', value: f => `${f.name} (${f.record})` },
    { header: 'COPIES', value: f => `${f.copies}/${f.target}` }
  ])
  if (copies.belowTarget > copies.files.length) process.stdout.write(`... and ${copies.belowTarget - copies.files.length} more
`)
}

function percent (done: number, total: number | undefined): string {
  if (total === undefined) return '?'
  return total === 0 ? '100%' : `${Math.floor(done / total * 100)}%`
}

/** Files arriving from peers, files waiting for one, and bytes served to peers. */
function printTransfers (sync: SyncStatus, peers: PeerStatus[]): void {
  if (!Array.isArray(sync.transfers)) return
  const names = new Map(peers.map(p => [p.peerId, p.name ?? p.peerId]))
  const wanted = sync.wanted ?? []
  process.stdout.write('\ntransfers:\n')
  table(sync.transfers, [
    { header: 'FILE SHA256', value: x => x.sha256 },
    { header: 'FROM', value: x => x.peer === undefined ? '-' : names.get(x.peer) ?? x.peer },
    { header: 'DONE', value: x => bytes(x.done) },
    { header: 'TOTAL', value: x => x.total === undefined ? '?' : bytes(x.total) },
    { header: 'PERCENT', value: x => percent(x.done, x.total) }
  ], '(no transfers in progress)')
  fields([
    ['waiting for a peer', `${wanted.length} file${wanted.length === 1 ? '' : 's'}, ${bytes(wanted.reduce((n, w) => n + w.size, 0))}`],
    ['held back by link profiles', heldBack(wanted)],
    ['served to peers', sync.blobBytesOut === undefined ? undefined : bytes(sync.blobBytesOut)]
  ])
}

/** How many waiting files only a metered peer, or one outside its files window, could bring now. */
function heldBack (wanted: Array<{ waiting?: string }>): string | undefined {
  const n = wanted.filter(w => w.waiting?.startsWith('held back by link profiles') === true).length
  return n === 0 ? undefined : `${n} file${n === 1 ? '' : 's'} (dw peer ls shows the profiles)`
}

function printSync (sync: SyncStatus): void {
  if (Array.isArray(sync.addresses) && sync.addresses.length > 0) {
    process.stdout.write('multiaddrs:\n' + sync.addresses.map(a => `  ${a}\n`).join(''))
  }
  if (Array.isArray(sync.peers)) {
    process.stdout.write('\n')
    peerTable(sync.peers, false)
  }
  printTransfers(sync, sync.peers ?? [])
  printCopies(sync.copies)
}

/** GET /backup/status (BackupStatus on the node). */
interface BackupStatus {
  last?: { at: string, ok: boolean, path?: string, bytes?: number, error?: string }
  schedule?: { next: string, everyMs: number }
}

/** One line on the last backup: when, whether it worked, where; and the next scheduled one. */
function backupLine (backup: BackupStatus | undefined): string | undefined {
  if (backup === undefined) return undefined
  const next = backup.schedule === undefined ? 'none scheduled (config.json "backup")' : `next ${backup.schedule.next}`
  const last = backup.last
  if (last === undefined) return `never; ${next}`
  const ago = `${duration(Math.max(0, (Date.now() - Date.parse(last.at)) / 1000))} ago`
  const outcome = last.ok ? `ok${last.bytes === undefined ? '' : `, ${bytes(last.bytes)}`}${last.path === undefined ? '' : ` in ${last.path}`}` : `FAILED: ${last.error ?? 'unknown'}`
  return `${last.at} (${ago}), ${outcome}; ${next}`
}

interface Health { ok: boolean, name?: string, peerId?: string, startedAt?: string, [key: string]: unknown }
interface Readiness { ready: boolean, checks: Record<string, string> }
export interface QuarantineEntry { id: string, key: string, peer?: string, reason: string, size: number, firstAt: string, lastAt: string, seen: number }

/** Documents from peers kept out of the store: `dw status` and `dw quarantine ls`. */
export function quarantineTable (items: QuarantineEntry[]): void {
  table(items, [
    { header: 'ID', value: q => q.id.slice(0, 16) },
    { header: 'DOCUMENT', value: q => q.key },
    { header: 'FROM PEER', value: q => q.peer ?? '-' },
    { header: 'SIZE', value: q => bytes(q.size) },
    { header: 'SEEN', value: q => q.seen },
    { header: 'LAST', value: q => q.lastAt },
    { header: 'WHY', value: q => q.reason }
  ], '(nothing quarantined)')
}

export function statusCommand (): Command {
  return apiCommand('status', 'show the running node: name, peer id, URL, uptime, sync, file transfers')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const health = await client.request<Health>('GET', '/healthz')
      // Older nodes lack these (404); members may not see the quarantine (403).
      const readiness = await client.request<Readiness | undefined>('GET', '/readyz', { allow: [404] })
        .catch((err: Error): Readiness => ({ ready: false, checks: { readyz: err.message } }))
      const quarantine = await client.request<{ items: QuarantineEntry[] } | undefined>('GET', '/quarantine', { allow: [403, 404] })
      // Older nodes lack sync status (404); members may not see it (403): status still answers.
      const sync = await client.request<SyncStatus | undefined>('GET', '/sync/status', { allow: [403, 404] })
      const backup = await client.request<BackupStatus | undefined>('GET', '/backup/status', { allow: [403, 404] })
      const started = health.startedAt !== undefined ? Date.parse(health.startedAt) : NaN
      const uptimeSeconds = Number.isNaN(started) ? undefined : Math.round((Date.now() - started) / 1000)
      if (options.json === true) {
        json({ ...health, url: client.url, uptimeSeconds, readiness: readiness ?? null, quarantine: quarantine?.items ?? null, backup: backup ?? null, sync: sync ?? null })
        return
      }
      fields([
        ['node', health.name],
        ['peer id', health.peerId],
        ['url', client.url],
        ['status', health.ok ? 'running' : 'unhealthy'],
        ['ready', readiness === undefined ? undefined : readiness.ready ? 'yes' : `NO, ${Object.values(readiness.checks).filter(c => c !== 'ok').join('; ')}`],
        ['quarantined', quarantine === undefined ? undefined : `${quarantine.items.length} document${quarantine.items.length === 1 ? '' : 's'} from peers`],
        ['last backup', backupLine(backup)],
        ['started', health.startedAt],
        ['uptime', uptimeSeconds !== undefined ? duration(uptimeSeconds) : undefined],
        ['sync', sync === undefined ? 'not available on this node' : undefined]
      ])
      if (quarantine !== undefined && quarantine.items.length > 0) {
        process.stdout.write('\nquarantine (drop an entry with: dw quarantine drop <id>):\n')
        quarantineTable(quarantine.items)
      }
      if (sync !== undefined) printSync(sync)
    })
}
