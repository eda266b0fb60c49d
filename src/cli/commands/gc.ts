import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, json } from '../output.ts'

/** POST /blobs/gc's answer (GcResult on the node). */
interface GcResult { removed: Array<{ sha256: string, size: number }>, freedBytes: number, kept: number }

interface GcOptions extends ConnectionOptions { dryRun?: boolean }

function files (n: number): string {
  return `${n} file${n === 1 ? '' : 's'}`
}

export function gcCommand (): Command {
  return apiCommand('gc', 'remove stored files that no live dataset, model or report references (admins)')
    .option('--dry-run', 'only report what would be removed')
    .action(async (options: GcOptions) => {
      const client = await connect(options)
      const dryRun = options.dryRun === true
      const result = await client.request<GcResult>('POST', '/blobs/gc', { json: { dryRun } })
      if (options.json === true) return json({ dryRun, ...result })
      const freed = `${files(result.removed.length)}, ${bytes(result.freedBytes)}`
      process.stdout.write(`${dryRun ? `would free ${freed}` : `freed ${freed}`}; ${files(result.kept)} still referenced\n`)
    })
}
