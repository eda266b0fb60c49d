import { Command, Option } from 'commander'
import { DwError } from '../../errors.ts'
import type { NodeClient } from '../client.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { fields, json, table } from '../output.ts'
import { readPassword } from '../prompt.ts'

interface UserRow {
  id: string
  username?: string
  name?: string
  role?: string
  disabled?: boolean
  deleted?: boolean
  usernameConflict?: boolean
  createdAt?: string
  email?: string
  displayName?: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** An account id from an id or a username; two accounts may share a name after a merge, so that is refused. */
export async function resolveUser (client: NodeClient, usernameOrId: string): Promise<string> {
  if (UUID.test(usernameOrId)) return usernameOrId.toLowerCase()
  const { items } = await client.request<{ items: UserRow[] }>('GET', '/users')
  const matches = items.filter(u => u.username === usernameOrId && u.deleted !== true)
  if (matches.length === 0) throw new DwError('NOT_FOUND', `no user named ${usernameOrId}`)
  if (matches.length > 1) {
    throw new DwError('CONFLICT', `${matches.length} accounts are named ${usernameOrId} (a merge conflict); use an id: ${matches.map(u => u.id).join(', ')}`)
  }
  return (matches[0] as UserRow).id
}

function showUser (user: UserRow, options: ConnectionOptions): void {
  if (options.json === true) return json(user)
  fields([
    ['id', user.id],
    ['username', user.username],
    ['role', user.role],
    ['display name', user.displayName],
    ['email', user.email],
    ['disabled', user.disabled === true ? 'yes' : 'no'],
    ['username conflict', user.usernameConflict === true ? 'yes: an admin must rename one of the accounts' : undefined]
  ])
}

interface AddOptions extends ConnectionOptions { role: string, email?: string, displayName?: string }

function add (): Command {
  return apiCommand('add', 'create an account (password from DW_USER_PASSWORD or a prompt)')
    .argument('<username>')
    .addOption(new Option('--role <role>', 'the account\'s role').choices(['admin', 'member']).default('member'))
    .option('--email <email>', 'e-mail address')
    .option('--display-name <name>', 'the name shown to others')
    .action(async (username: string, options: AddOptions) => {
      const client = await connect(options)
      const password = await readPassword({ env: 'DW_USER_PASSWORD', label: `password for ${username}`, confirm: true })
      const user = await client.request<UserRow>('POST', '/users', {
        json: { username, password, role: options.role, email: options.email, displayName: options.displayName }
      })
      showUser(user, options)
    })
}

function list (): Command {
  return apiCommand('ls', 'list accounts')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: UserRow[] }>('GET', '/users')
      if (options.json === true) return json(items)
      table(items.filter(u => u.deleted !== true), [
        { header: 'ID', value: u => u.id },
        { header: 'USERNAME', value: u => u.username ?? u.name },
        { header: 'ROLE', value: u => u.role },
        { header: 'STATUS', value: u => [u.disabled === true ? 'disabled' : 'active', u.usernameConflict === true ? 'name conflict' : ''].filter(Boolean).join(', ') },
        { header: 'CREATED', value: u => u.createdAt }
      ], '(no users)')
    })
}

function passwd (): Command {
  return apiCommand('passwd', 'set an account\'s password (new password from DW_USER_PASSWORD or a prompt)')
    .argument('<username-or-id>')
    .action(async (who: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const id = await resolveUser(client, who)
      const password = await readPassword({ env: 'DW_USER_PASSWORD', label: `new password for ${who}`, confirm: true })
      // Users changing their own password must prove the current one: the one they signed in with.
      const body = client.password !== undefined ? { password, currentPassword: client.password } : { password }
      const user = await client.request<UserRow>('PATCH', `/users/${id}`, { json: body })
      if (options.json === true) return json(user)
      process.stdout.write(`password changed for ${user.username ?? id}; their sessions were signed out\n`)
    })
}

function setDisabled (name: string, disabled: boolean): Command {
  return apiCommand(name, disabled ? 'disable an account and sign it out everywhere on this node' : 're-enable a disabled account')
    .argument('<username-or-id>')
    .action(async (who: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const id = await resolveUser(client, who)
      const user = await client.request<UserRow>('PATCH', `/users/${id}`, { json: { disabled } })
      if (options.json === true) return json(user)
      process.stdout.write(`${user.username ?? id} is ${disabled ? 'disabled' : 'enabled'}\n`)
    })
}

function sites (): Command {
  return apiCommand('sites', 'set which contributor sites may act for an account (full sites always may); no peer ids: none')
    .argument('<username-or-id>')
    .argument('[peerIds...]', 'peer ids of contributor nodes (dw node ls)')
    .action(async (who: string, peerIds: string[], options: ConnectionOptions) => {
      const client = await connect(options)
      const id = await resolveUser(client, who)
      const user = await client.request<UserRow>('PATCH', `/users/${id}`, { json: { sites: peerIds } })
      if (options.json === true) return json(user)
      process.stdout.write(`${user.username ?? id} may act through ${peerIds.length === 0 ? 'full sites only' : `full sites and ${peerIds.join(', ')}`}\n`)
    })
}

function restoreUser (): Command {
  return apiCommand('restore', 'bring back a deleted account (admins)')
    .argument('<id>', 'the account id (deleted accounts have no username that resolves)')
    .action(async (id: string, options: ConnectionOptions) => {
      const client = await connect(options)
      const user = await client.request<UserRow>('POST', `/users/${encodeURIComponent(id)}/restore`)
      if (options.json === true) return json(user)
      process.stdout.write(`${user.username ?? id} is restored\n`)
    })
}

export function userCommand (): Command {
  return new Command('user').description('manage accounts')
    .addCommand(add())
    .addCommand(list())
    .addCommand(passwd())
    .addCommand(setDisabled('disable', true))
    .addCommand(setDisabled('enable', false))
    .addCommand(sites())
    .addCommand(restoreUser())
}
