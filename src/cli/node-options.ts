import type { Command } from 'commander'

/**
 * Option parsers of the commands that run a node (`dw init`, `dw start`).
 * They check multiaddrs and peer ids with the libp2p libraries, about 150
 * modules and half the start-up time of a command; the commands that only
 * speak HTTP to a running node must not pay for them. Commander parsers are
 * synchronous, so the libraries cannot be imported inside one: main() awaits
 * loadFor(command) before commander parses a subcommand's options, which loads
 * them only for the commands marked here.
 */

type Config = typeof import('../config.ts')
type PeerAddress = typeof import('../peer/peer-address.ts')

let loaded: { config: Config, peerAddress: PeerAddress } | undefined
const users = new WeakSet<Command>()

/** Marks a command whose options use the parsers below. */
export function usesNodeOptions<C extends Command> (command: C): C {
  users.add(command)
  return command
}

/** Before commander parses `command`'s options: loads the libraries if it needs them. */
export async function loadFor (command: Command): Promise<void> {
  if (!users.has(command) || loaded !== undefined) return
  const [config, peerAddress] = await Promise.all([import('../config.ts'), import('../peer/peer-address.ts')])
  loaded = { config, peerAddress }
}

function modules (): { config: Config, peerAddress: PeerAddress } {
  if (loaded === undefined) throw new Error('a node option was parsed before its libraries were loaded (await loadFor(command) before parsing)')
  return loaded
}

export function parseHostPort (value: string): ReturnType<Config['parseHostPort']> {
  return modules().config.parseHostPort(value)
}

export function validateListenAddr (value: string): string {
  return modules().config.validateListenAddr(value)
}

export function parseAnnounceAddress (value: string): string {
  return modules().peerAddress.parseAnnounceAddress(value)
}
