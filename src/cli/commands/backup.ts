import { createWriteStream } from 'node:fs'
import { link, rm, stat } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, json } from '../output.ts'
import { progress } from '../progress.ts'

interface BackupOptions extends ConnectionOptions { to?: string, files?: string, verify?: boolean }

/** Where the archive goes: into a directory under the node's own name for it, or exactly the file named. */
async function targetPath (to: string, suggested: string): Promise<string> {
  const isDir = await stat(to).then(s => s.isDirectory(), () => false)
  return isDir ? join(to, suggested) : to
}

function suggestedName (response: IncomingMessage): string {
  const m = /filename="([^"/\\]+)"/.exec(String(response.headers['content-disposition'] ?? ''))
  return m?.[1] ?? `dw-backup-${new Date().toISOString().replace(/[:.]/g, '-')}.tar`
}

function counting (onBytes: (n: number) => void): Transform {
  return new Transform({ transform (chunk: Buffer, _enc, done) { onBytes(chunk.length); done(null, chunk) } })
}

/** `dw backup`: a consistent archive of the running node, written here and verified before it is kept. */
export function backupCommand (): Command {
  return apiCommand('backup', 'back up the running node into a tar archive (records, config, identity, peer book and files), then verify it (admins)')
    .option('--to <path>', 'an archive file, or a directory to put it in', '.')
    .option('--files <which>', 'include: file bytes in the archive (default for the disk store); manifest: only their list (default for S3, whose bucket keeps them)')
    .option('--no-verify', 'skip reading the archive back (not recommended)')
    .action(async (options: BackupOptions) => {
      if (options.files !== undefined && !['include', 'manifest'].includes(options.files)) {
        throw new DwError('INVALID_INPUT', `--files is "include" or "manifest", not "${options.files}"`)
      }
      const client = await connect(options)
      const response = await client.stream('GET', '/backup', { query: { files: options.files } }) as IncomingMessage
      const target = await targetPath(options.to ?? '.', suggestedName(response))
      const partial = `${target}.partial`
      const cleanUp = (): void => { void rm(partial, { force: true }).finally(() => process.exit(130)) }
      process.once('SIGINT', cleanUp)
      try {
        const bar = progress('backing up', Number(response.headers['x-dw-backup-estimate'] ?? 0))
        let size = 0
        await pipeline(response, counting(n => { size += n; bar.add(n) }), createWriteStream(partial, { flags: 'wx', mode: 0o600 })).finally(() => { bar.done() })
        let verified
        if (options.verify !== false) {
          // Loaded here, not at the top: it brings Automerge and LevelDB, which every other dw command would pay for at start.
          const { verifyBackup } = await import('../../backup/restore.ts')
          const check = progress('verifying', size)
          verified = await verifyBackup(partial, n => { check.add(n) }).finally(() => { check.done() })
        }
        await publish(partial, target)
        const result = { path: target, size, verified: verified !== undefined, ...(verified === undefined ? {} : { records: verified.records, files: verified.blobs, fileBytes: verified.blobBytes, createdAt: verified.manifest.createdAt }) }
        if (options.json === true) return json(result)
        const what = verified === undefined ? 'not verified' : `${verified.records} records, ${verified.blobs} files (${bytes(verified.blobBytes)}), verified`
        process.stdout.write(`backup written to ${target} (${bytes(size)}): ${what}\n`)
      } finally {
        process.off('SIGINT', cleanUp)
        await rm(partial, { force: true })
      }
    })
}

/** Never over an existing archive: a backup that would replace another is an admin's mistake. */
async function publish (partial: string, target: string): Promise<void> {
  try {
    await link(partial, target)
  } catch (err: any) {
    if (err?.code === 'EEXIST') throw new DwError('CONFLICT', `${target} already exists; choose another --to`)
    throw err
  }
}
