import { Command } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { json, table } from '../output.ts'
import { ago } from './peer.ts'

interface RosterRow { peerId: string, role: string, name: string, addedBy: string, addedAt: string, founder: boolean }

const ROLES = ['full', 'contributor', 'read-only']

function list (): Command {
  return apiCommand('ls', 'the mesh roster: every node and what it may write')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const roster = await client.request<{ meshId: string | null, self: string, selfRole: string, items: RosterRow[] }>('GET', '/nodes')
      if (options.json === true) return json(roster)
      process.stdout.write(roster.meshId === null
        ? 'this node has not joined a mesh yet: add a peer of the mesh (dw peer add), and have a full node there add this one\n'
        : `mesh ${roster.meshId}; this node is ${roster.selfRole === 'unknown' ? 'not in the roster yet' : roster.selfRole}\n`)
      table(roster.items, [
        { header: 'PEER ID', value: n => n.peerId + (n.peerId === roster.self ? ' (this node)' : '') },
        { header: 'NAME', value: n => n.name },
        { header: 'ROLE', value: n => n.role + (n.founder ? ' (founder)' : '') },
        { header: 'ADDED', value: n => ago(n.addedAt) }
      ], '(empty roster)')
    })
}

function role (): Command {
  return apiCommand('role', 'add a node to the mesh roster or change its role (on a full node)')
    .argument('<peerId>')
    .argument('<role>', 'full, contributor or read-only')
    .option('--name <name>', 'a human name for the node\'s site')
    .action(async (peerId: string, newRole: string, options: ConnectionOptions & { name?: string }) => {
      if (!ROLES.includes(newRole)) throw new Error(`role must be one of ${ROLES.join(', ')}, not ${JSON.stringify(newRole)}`)
      const client = await connect(options)
      const entry = await client.request<RosterRow>('PUT', `/nodes/${encodeURIComponent(peerId)}`, { json: { role: newRole, name: options.name } })
      if (options.json === true) return json(entry)
      process.stdout.write(`${peerId} is now ${entry.role}\n`)
    })
}

function revoke (): Command {
  return apiCommand('revoke', 'revoke a node for good: its later changes are refused on every node, its connections close (on a full node)')
    .argument('<peerId>')
    .action(async (peerId: string, options: ConnectionOptions) => {
      const client = await connect(options)
      await client.request('POST', `/nodes/${encodeURIComponent(peerId)}/revoke`)
      if (options.json === true) return json({ peerId, role: 'revoked' })
      process.stdout.write(`revoked ${peerId}; a revoked node needs a new identity to rejoin\n`)
    })
}

function found (): Command {
  return apiCommand('found', 'found a mesh on a node that has none; --adopt also vouches for the history already here (upgrading a site of the previous version: docs/trust.md)')
    .option('--adopt', 'sign, as this node, every change in the store written before changes were signed')
    .action(async (options: ConnectionOptions & { adopt?: boolean }) => {
      const client = await connect(options)
      const made = await client.request<{ meshId: string, attested: number }>('POST', '/nodes/found', { json: { adopt: options.adopt === true } })
      if (options.json === true) return json(made)
      process.stdout.write(`founded mesh ${made.meshId}; this node is its first full node${options.adopt === true ? `; ${made.attested} earlier changes attested` : ''}\n`)
    })
}

export function nodeCommand (): Command {
  return new Command('node').description('the mesh roster: which nodes belong and what each may write')
    .addCommand(list())
    .addCommand(found())
    .addCommand(role())
    .addCommand(revoke())
}
