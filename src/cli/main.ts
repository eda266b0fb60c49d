import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { isDwError } from '../errors.ts'
import { ApiError } from './client.ts'
import { loadFor } from './node-options.ts'
import { auditCommand } from './commands/audit.ts'
import { backupCommand } from './commands/backup.ts'
import { restoreCommand } from './commands/restore.ts'
import { datasetCommand } from './commands/dataset.ts'
import { fileCommand } from './commands/file.ts'
import { gcCommand } from './commands/gc.ts'
import { initCommand } from './commands/init.ts'
import { peerCommand } from './commands/peer.ts'
import { nodeCommand } from './commands/node.ts'
import { fleetCommand } from './commands/fleet.ts'
import { meshCommand } from './commands/mesh.ts'
import { modelCommand } from './commands/model.ts'
import { reportCommand } from './commands/report.ts'
import { pinCommand } from './commands/pin.ts'
import { startCommand } from './commands/start.ts'
import { statusCommand } from './commands/status.ts'
import { quarantineCommand } from './commands/quarantine.ts'
import { syncCommand } from './commands/sync.ts'
import { userCommand } from './commands/user.ts'
import { versionCommand } from './commands/version.ts'

function packageVersion (): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }
  return pkg.version ?? 'unknown'
}

export function buildProgram (): Command {
  const program = new Command('dw')
    .description('dw-mesh: a peer-to-peer replicated data warehouse for field sites')
    .version(packageVersion())
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
  for (const make of [initCommand, startCommand, statusCommand, quarantineCommand, peerCommand, nodeCommand, fleetCommand, meshCommand, syncCommand, auditCommand, userCommand, datasetCommand, modelCommand, reportCommand, versionCommand, fileCommand, pinCommand, gcCommand, backupCommand, restoreCommand]) {
    program.addCommand(make())
  }
  // Subcommands copy settings only when created through the parent; these were built standalone.
  const override = (command: Command): void => {
    command.exitOverride().showHelpAfterError('(add --help for usage)')
    command.commands.forEach(override)
  }
  program.commands.forEach(override)
  // Runs before commander parses the subcommand's options (src/cli/node-options.ts).
  program.hook('preSubcommand', async (_program, subcommand) => { await loadFor(subcommand) })
  return program
}

/** The message a user sees for a failure, without a stack trace for errors we expect. */
function describe (err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`
  if (isDwError(err)) return err.message
  if (err instanceof Error) return process.env.DW_DEBUG === '1' ? String(err.stack) : err.message
  return String(err)
}

export async function main (argv: string[] = process.argv): Promise<void> {
  // `dw status | head`: the reader has all it wanted; an EPIPE is the end, not a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0)
    throw err
  })
  try {
    await buildProgram().parseAsync(argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed help, the version or the usage error.
      process.exitCode = err.exitCode
      return
    }
    process.stderr.write(`dw: ${describe(err)}\n`)
    process.exitCode = 1
  }
}
