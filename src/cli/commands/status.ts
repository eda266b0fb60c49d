import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { duration, fields, json } from '../output.ts'
import { peerTable, type PeerStatus } from './peer.ts'

interface SyncStatus { addresses?: string[], peers?: PeerStatus[] }

function printSync (sync: SyncStatus): void {
  if (Array.isArray(sync.addresses) && sync.addresses.length > 0) {
    process.stdout.write('multiaddrs:\n' + sync.addresses.map(a => `  ${a}\n`).join(''))
  }
  if (!Array.isArray(sync.peers)) return
  process.stdout.write('\n')
  peerTable(sync.peers, false)
}

interface Health { ok: boolean, name?: string, peerId?: string, startedAt?: string, [key: string]: unknown }

export function statusCommand (): Command {
  return apiCommand('status', 'show the running node: name, peer id, URL, uptime, sync')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const health = await client.request<Health>('GET', '/healthz')
      // Older nodes lack sync status (404); members may not see it (403): status still answers.
      const sync = await client.request<SyncStatus | undefined>('GET', '/sync/status', { allow: [403, 404] })
      const started = health.startedAt !== undefined ? Date.parse(health.startedAt) : NaN
      const uptimeSeconds = Number.isNaN(started) ? undefined : Math.round((Date.now() - started) / 1000)
      if (options.json === true) {
        json({ ...health, url: client.url, uptimeSeconds, sync: sync ?? null })
        return
      }
      fields([
        ['node', health.name],
        ['peer id', health.peerId],
        ['url', client.url],
        ['status', health.ok ? 'running' : 'unhealthy'],
        ['started', health.startedAt],
        ['uptime', uptimeSeconds !== undefined ? duration(uptimeSeconds) : undefined],
        ['sync', sync === undefined ? 'not available on this node' : undefined]
      ])
      if (sync !== undefined) printSync(sync)
    })
}
