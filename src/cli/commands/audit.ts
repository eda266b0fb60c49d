import { InvalidArgumentError, type Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { json, table } from '../output.ts'

interface AuditEntry {
  id: string
  at: string
  type: string
  actor?: string
  peer?: string
  outcome?: string
  details?: Record<string, unknown>
}

const DETAILS_WIDTH = 80

function limit (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError(`--limit wants a whole number from 1 to 1000, got "${value}"`)
  return n
}

/** `key=value` pairs, cut to one table cell unless `wide`; session start and end are already in the time column. */
function summary (details: Record<string, unknown> | undefined, wide: boolean): string {
  const text = Object.entries(details ?? {})
    .filter(([key]) => key !== 'start' && key !== 'end')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
  return !wide && text.length > DETAILS_WIDTH ? `${text.slice(0, DETAILS_WIDTH - 3)}...` : text
}

interface AuditOptions extends ConnectionOptions { limit: number, type?: string, peer?: string, before?: string, wide?: boolean }

export function auditCommand (): Command {
  return apiCommand('audit', 'show the audit log, newest first: sync sessions and peer-book and account changes')
    .option('--limit <n>', 'how many entries', limit, 50)
    .option('--type <type>', 'only entries of this type, or types starting with it (e.g. sync, peer.add)')
    .option('--peer <peerId>', 'only entries about this peer')
    .option('--before <id>', 'continue after this entry id (for paging)')
    .option('--wide', `show each entry's details whole (a refusal's reason, a peer's address), not cut at ${DETAILS_WIDTH} characters`)
    .action(async (options: AuditOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: AuditEntry[] }>('GET', '/audit', {
        query: { limit: options.limit, type: options.type, peer: options.peer, before: options.before }
      })
      if (options.json === true) return json(items)
      const { items: users } = await client.request<{ items: Array<{ id: string, username?: string }> }>('GET', '/users')
      const names = new Map(users.map(u => [u.id, u.username ?? u.id]))
      table(items, [
        { header: 'TIME', value: e => e.at },
        { header: 'TYPE', value: e => e.type },
        { header: 'ACTOR', value: e => e.actor === undefined ? '' : names.get(e.actor) ?? e.actor },
        { header: 'PEER', value: e => e.peer },
        { header: 'OUTCOME', value: e => e.outcome ?? 'ok' },
        { header: 'DETAILS', value: e => summary(e.details, options.wide === true) }
      ], '(no audit entries)')
    })
}
