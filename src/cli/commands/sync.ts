import { InvalidArgumentError, type Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { json, table } from '../output.ts'

interface SyncResult { peerId: string, name?: string, ok: boolean, received: number, peerCaughtUp: boolean, error?: string }
interface SyncNow { ok: boolean, results: SyncResult[] }

/** The node accepts 0.1 s to 600 s (POST /sync/now's timeoutMs). */
function seconds (value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0.1 || n > 600) throw new InvalidArgumentError(`--timeout wants seconds between 0.1 and 600, got "${value}"`)
  return n
}

interface SyncOptions extends ConnectionOptions { timeout: number, full?: boolean }

export function syncCommand (): Command {
  return apiCommand('sync', 'sync with every trusted peer now, wait, and report; exits 1 if any peer failed')
    .option('--timeout <seconds>', 'how long to wait for each peer', seconds, 30)
    .option('--full', 'repair pass: compare every record each peer holds, not only what changed since the last sync')
    .action(async (options: SyncOptions) => {
      const client = await connect(options)
      const answer = await client.request<SyncNow>('POST', '/sync/now', { json: { timeoutMs: Math.round(options.timeout * 1000), full: options.full === true } })
      const failed = answer.results.filter(r => !r.ok)
      if (options.json === true) {
        json(answer)
      } else if (answer.results.length === 0) {
        process.stdout.write(`no peers to sync with; add one with: dw peer add <multiaddr> --data ${options.data}\n`)
      } else {
        table(answer.results, [
          { header: 'PEER', value: r => r.name ?? r.peerId },
          { header: 'RESULT', value: r => r.ok ? 'ok' : 'failed' },
          { header: 'RECEIVED', value: r => r.received },
          { header: 'PEER CAUGHT UP', value: r => r.peerCaughtUp ? 'yes' : 'no' },
          { header: 'ERROR', value: r => r.error }
        ])
      }
      if (failed.length > 0) {
        process.stderr.write(`dw: ${failed.length} of ${answer.results.length} peers did not sync: ${failed.map(r => r.name ?? r.peerId).join(', ')}\n`)
        process.exitCode = 1
      }
    })
}
