import { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { fields, json, table } from '../output.ts'

/** GET/PUT /mesh/copies. */
interface CopySettings { copies: number | null, copiesByTag: Record<string, number>, defaultCopies: number }

/** `3`, or `default` to clear; anything else is refused before the node is asked. */
export function parseCopies (value: string): number | null {
  if (value === 'default') return null
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 10) throw new DwError('INVALID_INPUT', `a copy target is a whole number from 1 to 10 (or "default"), not ${JSON.stringify(value)}`)
  return Number(value)
}

function copies (): Command {
  return apiCommand('copies', 'show, or set (admins, on a full node), how many sites must hold each file: mesh-wide, or with --tag for records with a tag (docs/files.md, "Copies")')
    .argument('[n]', 'copies of each file, 1 to 10, or "default" to clear the setting')
    .option('--tag <tag>', 'the target of the files of records with this tag')
    .action(async (n: string | undefined, options: ConnectionOptions & { tag?: string }) => {
      const wanted = n === undefined ? undefined : parseCopies(n)
      if (n === undefined && options.tag !== undefined) throw new DwError('INVALID_INPUT', 'give the number of copies for the tag, e.g. dw mesh copies --tag raw 3')
      const client = await connect(options)
      const settings = n === undefined
        ? await client.request<CopySettings>('GET', '/mesh/copies')
        : await client.request<CopySettings>('PUT', '/mesh/copies', { json: { copies: wanted, ...(options.tag === undefined ? {} : { tag: options.tag }) } })
      if (options.json === true) return json(settings)
      fields([['copies of each file', settings.copies === null ? `${settings.defaultCopies} (the default)` : settings.copies]])
      const tags = Object.entries(settings.copiesByTag)
      if (tags.length > 0) {
        process.stdout.write('per tag (the highest target that applies counts):\n')
        table(tags, [{ header: 'TAG', value: ([tag]) => tag }, { header: 'COPIES', value: ([, c]) => c }])
      }
    })
}

export function meshCommand (): Command {
  return new Command('mesh').description('mesh-wide settings, kept in the replicated roster')
    .addCommand(copies())
}
