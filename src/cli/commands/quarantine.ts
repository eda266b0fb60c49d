import { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { json } from '../output.ts'
import { DwError } from '../../errors.ts'
import { quarantineTable, type QuarantineEntry } from './status.ts'

function list (): Command {
  return apiCommand('ls', 'list documents from peers kept out because loading them broke a limit (admins)')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: QuarantineEntry[] }>('GET', '/quarantine')
      if (options.json === true) return json(items)
      quarantineTable(items)
    })
}

function drop (): Command {
  return apiCommand('drop', 'drop a quarantine entry (if the same bytes come again they are checked again)')
    .argument('<id>', 'the entry id, or the first characters of it as `dw quarantine ls` shows them')
    .action(async (id: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: QuarantineEntry[] }>('GET', '/quarantine')
      const matches = items.filter(q => q.id.startsWith(id.trim().toLowerCase()))
      if (matches.length !== 1) {
        if (matches.length === 0) throw new DwError('NOT_FOUND', `no quarantine entry starts with ${id}; see dw quarantine ls`)
        throw new DwError('INVALID_INPUT', `${id} matches ${matches.length} entries; give more characters`)
      }
      const entry = matches[0] as QuarantineEntry
      await client.request('DELETE', `/quarantine/${entry.id}`)
      if (options.json === true) return json({ id: entry.id, dropped: true })
      process.stdout.write(`dropped quarantine entry ${entry.id} (${entry.key})\n`)
    })
}

export function quarantineCommand (): Command {
  return new Command('quarantine').description('documents from peers that broke a limit and were kept out')
    .addCommand(list())
    .addCommand(drop())
}
