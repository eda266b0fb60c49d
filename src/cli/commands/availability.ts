import type { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, json, table } from '../output.ts'
import { checkId, recordPath } from './records.ts'
import { kindOf, withModelFlag } from './version.ts'

/** One file as an availability answer lists it (FileAvailability on the node). */
interface FileAvailability {
  name: string
  sha256: string
  size: number
  mediaType: string
  present: boolean
  peers: string[]
  /** Nodes without copy targets leave these out. */
  target?: number
  copies?: number
  holders?: Array<{ peerId: string, name?: string }>
}

/** One version as GET /datasets/:id/availability answers it (VersionAvailability on the node). */
interface VersionAvailability { versionId: string, complete: boolean, files: FileAvailability[] }

interface AvailabilityOptions extends ConnectionOptions { model?: boolean }

/** `dw dataset availability`: which files of each version are here, which connected peers have them, and how many sites hold each against its copy target. */
export function availabilityCommand (kind: 'dataset' | 'model' = 'dataset'): Command {
  const command = apiCommand('availability', 'per version: whether every file is on this node, which connected peers have each, and its copies (sites that hold it) against its target')
    .argument(`<${kind}-id>`)
  // `dw dataset availability --model` predates `dw model availability`; it still works.
  return withModelFlag(command, kind === 'dataset' ? undefined : kind)
    .action(async (id: string, options: AvailabilityOptions) => {
      const which = kindOf(kind === 'dataset' ? undefined : kind, options)
      checkId(id, which)
      const client = await connect(options)
      const base = recordPath(which, id)
      const { items } = await client.request<{ items: VersionAvailability[] }>('GET', `${base}/availability`)
      if (options.json === true) return json(items)
      if (items.length === 0) {
        process.stdout.write('(no versions)\n')
        return
      }
      const print = await filePrinter(client)
      items.forEach((version, i) => {
        process.stdout.write(`${i === 0 ? '' : '\n'}version ${version.versionId}  complete here: ${version.complete ? 'yes' : 'no'}\n`)
        print(version.files)
      })
    })
}

/** `dw report availability`: the same for a report's attached files. */
export function reportAvailabilityCommand (): Command {
  return apiCommand('availability', 'per attached file: whether it is on this node, which connected peers have it, and its copies (sites that hold it) against its target')
    .argument('<report-id>')
    .action(async (id: string, options: ConnectionOptions) => {
      checkId(id, 'report')
      const client = await connect(options)
      const answer = await client.request<{ complete: boolean, files: FileAvailability[] }>('GET', `${recordPath('report', id)}/availability`)
      if (options.json === true) return json(answer)
      if (answer.files.length === 0) {
        process.stdout.write('(no files)\n')
        return
      }
      process.stdout.write(`attachments  complete here: ${answer.complete ? 'yes' : 'no'}\n`)
      ;(await filePrinter(client))(answer.files)
    })
}

/** Prints a table of files with where each is; peers by the names in the peer book when this user may read it. */
async function filePrinter (client: Awaited<ReturnType<typeof connect>>): Promise<(files: FileAvailability[]) => void> {
  // Peer names are in the peer book, which only admins may read: members see peer ids.
  const peers = await client.request<{ items: Array<{ peerId: string, name?: string }> }>('GET', '/peers', { allow: [403] })
  const names = new Map((peers?.items ?? []).map(p => [p.peerId, p.name ?? p.peerId]))
  const holder = (h: { peerId: string, name?: string }): string => names.get(h.peerId) ?? (h.name !== undefined && h.name !== '' ? h.name : h.peerId)
  return files => {
    table(files, [
      { header: 'FILE', value: f => f.name },
      { header: 'SIZE', value: f => bytes(f.size) },
      { header: 'HERE', value: f => f.present ? 'yes' : 'no' },
      { header: 'PEERS', value: f => f.peers.length === 0 ? '-' : f.peers.map(p => names.get(p) ?? p) },
      { header: 'COPIES', value: f => f.copies === undefined || f.target === undefined ? '-' : `${f.copies}/${f.target}${f.copies < f.target ? ' (below target)' : ''}` },
      { header: 'HELD BY', value: f => f.holders === undefined || f.holders.length === 0 ? '-' : f.holders.map(holder) }
    ], '(no files)')
  }
}
