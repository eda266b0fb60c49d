import { Command, InvalidArgumentError } from 'commander'
import { isDwError } from '../errors.ts'
import { NodeClient } from './client.ts'
import { readPassword } from './prompt.ts'

export const DEFAULT_DATA = './dw-data'

export interface DataOptions { data: string }
export interface ConnectionOptions extends DataOptions { url?: string, user?: string, json?: boolean }

/** A command with `--data`, which every dw command takes. */
export function command (name: string, description: string): Command {
  return new Command(name).description(description).option('--data <dir>', 'the node\'s data directory', DEFAULT_DATA)
}

/** A command that talks to a running node's HTTP API. */
export function apiCommand (name: string, description: string): Command {
  return command(name, description)
    .option('--json', 'print JSON for scripts instead of tables')
    .option('--user <username>', 'sign in as this user (password from DW_PASSWORD or a prompt) instead of the local node token')
    .option('--url <url>', 'the node\'s HTTP API, with --user (default: the node running on --data)')
}

export async function connect (options: ConnectionOptions): Promise<NodeClient> {
  return await NodeClient.connect({
    data: options.data,
    url: options.url,
    user: options.user,
    password: async () => await readPassword({ env: 'DW_PASSWORD', label: `password for ${options.user ?? ''}` })
  })
}

/** For repeatable options: `--tag a --tag b`. */
export function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** Option parsers that throw DwError, wrapped so commander reports a bad value as a usage error. */
export function asOption<T> (parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value)
    } catch (err) {
      throw new InvalidArgumentError(isDwError(err) ? err.message : String(err))
    }
  }
}

export function asRepeatedOption<T> (parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  const one = asOption(parse)
  return (value, previous = []) => [...previous, one(value)]
}
