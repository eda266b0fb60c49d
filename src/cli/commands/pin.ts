import { Argument, Command } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { fields, json, table } from '../output.ts'

/** Same values as PinTargets in src/warehouse/pins.ts; importing it would load the record stack. */
const TARGETS = ['dataset', 'model', 'tag', 'kind']

/** One pin as GET /pins and POST /pins answer it. */
interface Pin { id: string, target: string, value: string, createdAt: string, by: string }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function add (): Command {
  return apiCommand('add', 'pin a dataset or model (by id), a tag, or a kind (dataset, model, report): this node fetches and keeps their files')
    .addArgument(new Argument('<target>', 'what the value names').choices(TARGETS))
    .argument('<value>', 'a dataset or model id, a tag, or a kind')
    .action(async (target: string, value: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const pin = await client.request<Pin>('POST', '/pins', { json: { target, value } })
      if (options.json === true) return json(pin)
      process.stdout.write(`pinned ${pin.target} ${pin.value}; its files are fetched in the background\n`)
      fields([['pin id', pin.id], ['created', pin.createdAt]])
    })
}

function list (): Command {
  return apiCommand('ls', 'list this node\'s pins (pins are local: they do not replicate)')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: Pin[] }>('GET', '/pins')
      if (options.json === true) return json(items)
      const { items: users } = await client.request<{ items: Array<{ id: string, username?: string }> }>('GET', '/users')
      const names = new Map(users.map(u => [u.id, u.username ?? u.id]))
      table(items, [
        { header: 'ID', value: p => p.id },
        { header: 'TARGET', value: p => p.target },
        { header: 'VALUE', value: p => p.value },
        { header: 'CREATED', value: p => p.createdAt },
        { header: 'BY', value: p => names.get(p.by) ?? p.by }
      ], '(no pins; add one with: dw pin add dataset|model|tag|kind <value>)')
    })
}

function remove (): Command {
  return apiCommand('rm', 'remove a pin; files already fetched stay here')
    .argument('<pin-id>', 'as dw pin ls shows it')
    .action(async (id: string, options: ConnectionOptions) => {
      // The node only says the id "must match format uuid"; this names what was meant.
      if (!UUID.test(id)) throw new DwError('INVALID_INPUT', `"${id}" is not a pin id; dw pin ls lists them`)
      const client = await connect(options)
      await client.request('DELETE', `/pins/${encodeURIComponent(id)}`)
      if (options.json === true) return json({ id, removed: true })
      process.stdout.write(`removed pin ${id}\n`)
    })
}

export function pinCommand (): Command {
  return new Command('pin').description('manage pins: records whose files this node fetches and keeps (admins)')
    .addCommand(add())
    .addCommand(list())
    .addCommand(remove())
}
