import { chmod, mkdir, readdir, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { DwError } from '../errors.ts'

/**
 * Owner only. The data directory holds the node's private key, every
 * account's password hash (in `db/`) and the admin token of the running
 * node; with the directory closed, nothing under it is reachable by other
 * users whatever the modes of the files inside.
 */
export const DATA_DIR_MODE = 0o700
export const DATA_FILE_MODE = 0o600

/** Writes a warning where an admin running `dw` sees it. */
export function warnOnStderr (message: string): void {
  process.stderr.write(`dw: warning: ${message}\n`)
}

/** Creates the data directory owner-only (its parents as the umask says); an existing one is left as it is. */
export async function makeDataDir (dataDir: string): Promise<void> {
  await mkdir(dirname(dataDir), { recursive: true })
  await mkdir(dataDir, { mode: DATA_DIR_MODE }).catch((err: any) => { if (err?.code !== 'EEXIST') throw err })
}

/**
 * Makes everything under a freshly initialised data directory owner-only:
 * LevelDB creates its files as the umask allows (0644 under the usual 022),
 * and it takes no mode of its own.
 */
export async function restrictTree (dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      await chmod(path, DATA_DIR_MODE)
      await restrictTree(path)
    } else if (entry.isFile()) {
      await chmod(path, DATA_FILE_MODE)
    }
  }
}

/**
 * Closes a data directory that others can enter or read (a node made by an
 * older version, or a copy restored with loose modes), saying so through
 * `warn`. A directory this process may not chmod is reported, not fatal.
 */
export async function closeDataDir (dataDir: string, warn: (message: string) => void): Promise<void> {
  const mode = (await stat(dataDir)).mode & 0o777
  if ((mode & 0o077) === 0) return
  const was = mode.toString(8).padStart(4, '0')
  try {
    await chmod(dataDir, DATA_DIR_MODE)
    warn(`the data directory ${dataDir} was mode ${was}, open to other users; it is now 0700 (owner only)`)
  } catch (err: any) {
    warn(`the data directory ${dataDir} is mode ${was}, open to other users, and could not be changed (${err?.code ?? String(err)}): chmod 700 it`)
  }
}

/** Refuses a directory that already holds a node (its config or its database): `dw init` never overwrites one. */
export async function refuseInitialised (dataDir: string): Promise<void> {
  const existing = await readdir(dataDir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return [] as string[]; throw err })
  if (existing.includes('config.json') || existing.includes('db')) {
    throw new DwError('ALREADY_INITIALISED', `${dataDir} already holds a dw node; pick another --data directory`)
  }
}
