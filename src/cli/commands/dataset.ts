import { Command, InvalidArgumentError } from 'commander'
import { DwError } from '../../errors.ts'
import type { NodeClient } from '../client.ts'
import { apiCommand, asOption, collect, connect, type ConnectionOptions } from '../options.ts'
import { bytes, fields, json, table } from '../output.ts'
import { availabilityCommand } from './availability.ts'
import { parseCopies } from './mesh.ts'
import { resolveUser } from './user.ts'

interface Summary { id: string, name: string, owner: string, ownerName?: string, tags: string[], deleted: boolean, createdAt: string, updatedAt: string }
interface FileRef { name: string, sha256: string, size: number, mediaType: string }
export interface Version { id: string, files: FileRef[], note: string, author: string, createdAt: string }
interface Dataset extends Summary {
  description: string
  metadata: Record<string, unknown>
  versions: Version[]
  conflicts: Record<string, unknown[]>
}

function meta (value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf('=')
  if (at <= 0) throw new InvalidArgumentError(`--meta wants key=value, got "${value}"`)
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) }
}

async function usernames (client: NodeClient): Promise<Map<string, string>> {
  const { items } = await client.request<{ items: Array<{ id: string, username?: string }> }>('GET', '/users')
  return new Map(items.map(u => [u.id, u.username ?? u.id]))
}

export function versionTable (versions: Version[]): void {
  table(versions, [
    { header: 'VERSION', value: v => v.id },
    { header: 'CREATED', value: v => v.createdAt },
    { header: 'FILES', value: v => v.files.map(f => f.name) },
    { header: 'SIZE', value: v => bytes(v.files.reduce((n, f) => n + f.size, 0)) },
    { header: 'NOTE', value: v => v.note }
  ], '(no versions)')
}

interface CreateOptions extends ConnectionOptions { description?: string, tag?: string[], meta?: Record<string, string> }

function create (): Command {
  return apiCommand('create', 'create a dataset')
    .argument('<name>')
    .option('--description <text>', 'what the data is')
    .option('--tag <tag>', 'a tag (repeatable)', collect)
    .option('--meta <key=value>', 'a custom metadata field (repeatable)', meta)
    .action(async (name: string, options: CreateOptions) => {
      const client = await connect(options)
      const dataset = await client.request<Dataset>('POST', '/datasets', {
        json: { name, description: options.description, tags: options.tag === undefined ? undefined : [...new Set(options.tag)], metadata: options.meta }
      })
      if (options.json === true) return json(dataset)
      fields([['id', dataset.id], ['name', dataset.name], ['tags', dataset.tags]])
    })
}

interface ListOptions extends ConnectionOptions { tag?: string, owner?: string, q?: string, deleted?: boolean, limit?: number }

function positive (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--limit wants a whole number from 1 up, got "${value}"`)
  return n
}

function list (): Command {
  return apiCommand('ls', 'list datasets')
    .option('--tag <tag>', 'only datasets with this tag')
    .option('--owner <user>', 'only datasets owned by this user (username or id)')
    .option('--q <text>', 'only datasets whose name contains this text')
    .option('--deleted', 'include deleted datasets')
    .option('--limit <n>', 'show at most this many (the first, in creation order)', positive)
    .action(async (options: ListOptions) => {
      const client = await connect(options)
      const owner = options.owner === undefined ? undefined : await resolveUser(client, options.owner)
      const items: Summary[] = []
      const wanted = options.limit ?? Infinity
      let cursor: string | undefined
      let total = 0
      do {
        const page = await client.request<{ items: Summary[], next?: string, total: number }>('GET', '/datasets', {
          query: { tag: options.tag, owner, q: options.q, includeDeleted: options.deleted, limit: Math.min(1000, wanted - items.length), cursor }
        })
        items.push(...page.items)
        total = page.total
        cursor = page.next
      } while (cursor !== undefined && items.length < wanted)
      if (options.json === true) return json(items)
      const names = await usernames(client)
      table(items, [
        { header: 'ID', value: d => d.id },
        { header: 'NAME', value: d => d.deleted ? `${d.name} (deleted)` : d.name },
        { header: 'TAGS', value: d => d.tags },
        { header: 'OWNER', value: d => d.ownerName ?? names.get(d.owner) ?? d.owner },
        { header: 'UPDATED', value: d => d.updatedAt }
      ], '(no datasets)')
      if (items.length < total) process.stdout.write(`${items.length} of ${total} datasets (--limit)\n`)
    })
}

function show (): Command {
  return apiCommand('show', 'show a dataset with its versions')
    .argument('<id>')
    .action(async (id: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const dataset = await client.request<Dataset>('GET', `/datasets/${encodeURIComponent(id)}`)
      if (options.json === true) return json(dataset)
      const names = await usernames(client)
      fields([
        ['id', dataset.id],
        ['name', dataset.name],
        ['description', dataset.description],
        ['owner', dataset.ownerName ?? names.get(dataset.owner) ?? dataset.owner],
        ['tags', dataset.tags],
        ['created', dataset.createdAt],
        ['updated', dataset.updatedAt]
      ])
      const metadata = Object.entries(dataset.metadata ?? {})
      if (metadata.length > 0) process.stdout.write('metadata:\n' + metadata.map(([k, v]) => `  ${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}\n`).join(''))
      const conflicts = Object.entries(dataset.conflicts ?? {})
      if (conflicts.length > 0) {
        process.stdout.write('conflicts (values that lost a concurrent edit; writing the field again clears them):\n' +
          conflicts.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join(''))
      }
      process.stdout.write('\n')
      versionTable(dataset.versions ?? [])
    })
}

function remove (): Command {
  return apiCommand('rm', 'delete a dataset (the deletion replicates to every site)')
    .argument('<id>')
    .action(async (id: string, options: ConnectionOptions) => {
      const client = await connect(options)
      await client.request('DELETE', `/datasets/${encodeURIComponent(id)}`)
      if (options.json === true) return json({ id, deleted: true })
      process.stdout.write(`deleted dataset ${id}\n`)
    })
}

function set (): Command {
  return apiCommand('set', 'change a dataset (its owner or an admin)')
    .argument('<id>')
    .option('--copies <n>', 'how many sites must hold each of its files, 1 to 10, or "default" for the mesh\'s and its tags\' targets (the highest counts)', asOption(parseCopies))
    .action(async (id: string, options: ConnectionOptions & { copies?: number | null }) => {
      if (options.copies === undefined) throw new DwError('INVALID_INPUT', 'nothing to change: give --copies')
      const client = await connect(options)
      const dataset = await client.request<Dataset & { copies?: number }>('PATCH', `/datasets/${encodeURIComponent(id)}`, { json: { copies: options.copies } })
      if (options.json === true) return json(dataset)
      fields([['id', dataset.id], ['copies', dataset.copies ?? 'the mesh\'s and its tags\' target']])
    })
}

export function datasetCommand (): Command {
  return new Command('dataset').description('manage datasets')
    .addCommand(create())
    .addCommand(list())
    .addCommand(show())
    .addCommand(remove())
    .addCommand(set())
    .addCommand(availabilityCommand())
}
