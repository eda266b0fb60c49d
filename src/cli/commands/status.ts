import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { duration, fields, json } from '../output.ts'

interface Health { ok: boolean, name?: string, peerId?: string, startedAt?: string, [key: string]: unknown }

export function statusCommand (): Command {
  return apiCommand('status', 'show the running node: name, peer id, URL, uptime, sync')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const health = await client.request<Health>('GET', '/healthz')
      // Sync status arrives with the peer layer; older nodes answer 404.
      const sync = await client.request<Record<string, unknown> | undefined>('GET', '/sync/status', { allow: [404] })
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
      if (sync !== undefined) {
        process.stdout.write('sync:\n')
        for (const [key, value] of Object.entries(sync)) process.stdout.write(`  ${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}\n`)
      }
    })
}
