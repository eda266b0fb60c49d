import { Command, InvalidArgumentError } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, asOption, connect, type ConnectionOptions } from '../options.ts'
import { bytes, fields, json, table, type Column } from '../output.ts'
import { parseCopies } from './mesh.ts'
import { resolveUser } from './user.ts'

/**
 * What `dw dataset`, `dw model` and `dw report` share: ls, show, rm and set
 * for one record kind over the node's `/datasets`, `/models` and `/reports`
 * routes. Each kind's file adds what is its own (create, versions,
 * training, attachments) and how `show` prints its body.
 */

export type ContentKind = 'dataset' | 'model' | 'report'
export const PLURAL: Record<ContentKind, string> = { dataset: 'datasets', model: 'models', report: 'reports' }

export interface FileRef { name: string, sha256: string, size: number, mediaType: string, present?: boolean }
export interface Version { id: string, files: FileRef[], note: string, author: string, authorName?: string, createdAt: string }

/** A list row (the node's record summary). */
export interface Summary { id: string, name: string, owner: string, ownerName?: string, tags: string[], deleted: boolean, createdAt: string, updatedAt: string }

/** One record as GET /<kind>s/:id answers it; fields by kind. */
export interface RecordView extends Summary {
  createdBy?: string
  createdByName?: string
  conflicts?: Record<string, unknown[]>
  [field: string]: unknown
}

export function recordPath (kind: ContentKind, id: string): string {
  return `/${PLURAL[kind]}/${encodeURIComponent(id)}`
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Record and version ids are UUIDs: a mistyped one is refused before anything is sent, saying where to find the right one. */
export function checkId (value: string, what: string, hint = `dw ${what} ls lists them`): string {
  if (!UUID.test(value)) throw new DwError('INVALID_INPUT', `not a ${what} id: ${JSON.stringify(value)} (ids are uuids, like 0190c5e4-7b1a-7c3e-9f00-5a1b2c3d4e5f; ${hint})`)
  return value
}

/** A user's name as the node gave it (`ownerName`, `authorName`...), else the id. */
export function nameOr (name: unknown, id: unknown): string {
  return typeof name === 'string' && name !== '' ? name : String(id ?? '')
}

export function positive (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--limit wants a whole number from 1 up, got "${value}"`)
  return n
}

/** `--meta key=value` and the like: repeatable, later keys win. */
export function keyValue (flag: string, parse: (value: string, key: string) => unknown = v => v) {
  return (value: string, previous: Record<string, unknown> = {}): Record<string, unknown> => {
    const at = value.indexOf('=')
    if (at <= 0) throw new InvalidArgumentError(`${flag} wants key=value, got "${value}"`)
    const key = value.slice(0, at)
    return { ...previous, [key]: parse(value.slice(at + 1), key) }
  }
}

export function versionTable (versions: Version[]): void {
  table(versions, [
    { header: 'VERSION', value: v => v.id },
    { header: 'CREATED', value: v => v.createdAt },
    { header: 'AUTHOR', value: v => nameOr(v.authorName, v.author) },
    { header: 'FILES', value: v => v.files.map(f => f.name) },
    { header: 'SIZE', value: v => bytes(v.files.reduce((n, f) => n + f.size, 0)) },
    { header: 'NOTE', value: v => v.note }
  ], '(no versions)')
}

/** `key = value` lines under a heading, for metadata, metrics, a report's body. */
export function printMap (heading: string, map: unknown): void {
  const entries = Object.entries(map !== null && typeof map === 'object' ? map : {})
  if (entries.length === 0) return
  process.stdout.write(`${heading}:\n` + entries.map(([k, v]) => `  ${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}\n`).join(''))
}

function printConflicts (record: RecordView): void {
  const conflicts = Object.entries(record.conflicts ?? {})
  if (conflicts.length === 0) return
  process.stdout.write('conflicts (values that lost a concurrent edit; writing the field again clears them):\n' +
    conflicts.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join(''))
}

interface ListOptions extends ConnectionOptions { tag?: string, owner?: string, q?: string, deleted?: boolean, limit?: number }

/** `ls`: pages through the list route, `--limit` the first N in creation order, "N of TOTAL" when cut. */
export function listCommand (kind: ContentKind): Command {
  const tagged = kind !== 'report'
  const name = kind === 'report' ? 'title' : 'name'
  const command = apiCommand('ls', `list ${PLURAL[kind]}`)
  if (tagged) command.option('--tag <tag>', `only ${PLURAL[kind]} with this tag`)
  return command
    .option('--owner <user>', `only ${PLURAL[kind]} owned by this user (username or id)`)
    .option('--q <text>', `only ${PLURAL[kind]} whose ${name} contains this text`)
    .option('--deleted', `include deleted ${PLURAL[kind]}`)
    .option('--limit <n>', 'show at most this many (the first, in creation order)', positive)
    .action(async (options: ListOptions) => {
      const client = await connect(options)
      const owner = options.owner === undefined ? undefined : await resolveUser(client, options.owner)
      const items: Summary[] = []
      const wanted = options.limit ?? Infinity
      let cursor: string | undefined
      let total = 0
      do {
        const page = await client.request<{ items: Summary[], next?: string, total: number }>('GET', `/${PLURAL[kind]}`, {
          query: { tag: options.tag, owner, q: options.q, includeDeleted: options.deleted, limit: Math.min(1000, wanted - items.length), cursor }
        })
        items.push(...page.items)
        total = page.total
        cursor = page.next
      } while (cursor !== undefined && items.length < wanted)
      if (options.json === true) return json(items)
      const columns: Array<Column<Summary>> = [
        { header: 'ID', value: d => d.id },
        { header: name.toUpperCase(), value: d => d.deleted ? `${d.name} (deleted)` : d.name },
        ...(tagged ? [{ header: 'TAGS', value: (d: Summary) => d.tags }] : []),
        { header: 'OWNER', value: d => nameOr(d.ownerName, d.owner) },
        { header: 'UPDATED', value: d => d.updatedAt }
      ]
      table(items, columns, `(no ${PLURAL[kind]})`)
      if (items.length < total) process.stdout.write(`${items.length} of ${total} ${PLURAL[kind]} (--limit)\n`)
    })
}

/**
 * `show`: the record's own fields (`head`, `tail` by kind), its owner and
 * times, and any conflicts; `--json` prints the node's answer as is.
 */
export function showCommand (kind: ContentKind, description: string, render: {
  head: (record: RecordView) => Array<[string, unknown]>
  tail?: (record: RecordView) => void
}): Command {
  return apiCommand('show', description)
    .argument(`<${kind}-id>`)
    .action(async (id: string, options: ConnectionOptions) => {
      checkId(id, kind)
      const client = await connect(options)
      const record = await client.request<RecordView>('GET', recordPath(kind, id))
      if (options.json === true) return json(record)
      fields([
        ['id', record.id],
        ...render.head(record),
        ['owner', nameOr(record.ownerName, record.owner)],
        ['created', `${record.createdAt}${record.createdBy === undefined || record.createdBy === record.owner ? '' : ` by ${nameOr(record.createdByName, record.createdBy)}`}`],
        ['updated', record.updatedAt]
      ])
      printConflicts(record)
      render.tail?.(record)
    })
}

export function removeCommand (kind: ContentKind): Command {
  return apiCommand('rm', `delete a ${kind} (the deletion replicates to every site)`)
    .argument(`<${kind}-id>`)
    .action(async (id: string, options: ConnectionOptions) => {
      checkId(id, kind)
      const client = await connect(options)
      await client.request('DELETE', recordPath(kind, id))
      if (options.json === true) return json({ id, deleted: true })
      process.stdout.write(`deleted ${kind} ${id}\n`)
    })
}

export function setCommand (kind: ContentKind): Command {
  return apiCommand('set', `change a ${kind} (its owner or an admin)`)
    .argument(`<${kind}-id>`)
    .option('--copies <n>', 'how many sites must hold each of its files, 1 to 10, or "default" for the mesh\'s and its tags\' targets (the highest counts)', asOption(parseCopies))
    .action(async (id: string, options: ConnectionOptions & { copies?: number | null }) => {
      if (options.copies === undefined) throw new DwError('INVALID_INPUT', 'nothing to change: give --copies')
      checkId(id, kind)
      const client = await connect(options)
      const record = await client.request<RecordView & { copies?: number }>('PATCH', recordPath(kind, id), { json: { copies: options.copies } })
      if (options.json === true) return json(record)
      fields([['id', record.id], ['copies', record.copies ?? 'the mesh\'s and its tags\' target']])
    })
}
