import type { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { command, type DataOptions } from '../options.ts'
import { bytes, fields, json } from '../output.ts'
import { progress } from '../progress.ts'
import { stat } from 'node:fs/promises'

interface RestoreOptions extends DataOptions { from?: string, json?: boolean }

/** `dw restore`: a new data directory from a backup archive; the node is the same site, in a new incarnation. */
export function restoreCommand (): Command {
  return command('restore', 'make a data directory from a backup archive: the same site, which pulls back from its peers what was written since')
    .requiredOption('--from <archive>', 'the backup archive (from dw backup or a scheduled backup)')
    .option('--json', 'print JSON for scripts')
    .action(async (options: RestoreOptions) => {
      const from = options.from as string
      const size = await stat(from).then(s => s.size, () => { throw new DwError('NOT_FOUND', `no backup archive at ${from}`) })
      // Loaded here, not at the top: it brings Automerge and LevelDB, which every other dw command would pay for at start.
      const { restoreBackup } = await import('../../backup/restore.ts')
      const bar = progress('restoring', size)
      const result = await restoreBackup(from, options.data, n => { bar.add(n) }).finally(() => { bar.done() })
      if (options.json === true) return json({ data: options.data, ...result })
      fields([
        ['restored', options.data],
        ['node', `${result.manifest.name} (${result.manifest.peerId})`],
        ['backup taken', result.manifest.createdAt],
        ['records', String(result.records)],
        ['files', `${result.blobs} (${bytes(result.blobBytes)})${result.missingBlobs > 0 ? `; ${result.missingBlobs} named in the backup are not in the store` : ''}`]
      ])
      process.stdout.write(`\nstart it with: dw start --data ${options.data}\n` +
        'It begins a new feed epoch, so its peers send back what was written since the backup. Do not start the old node again.\n')
    })
}
