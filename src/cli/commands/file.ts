import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { link, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { IncomingMessage } from 'node:http'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, json } from '../output.ts'
import { progress } from '../progress.ts'
import { checkId, recordPath } from './records.ts'
import { kindOf, withModelFlag } from './version.ts'

export interface GetOptions extends ConnectionOptions { output?: string, force?: boolean, model?: boolean }

/** Where the file goes: `-o` (a directory means "inside it"), else ./NAME. */
async function targetPath (name: string, output: string | undefined): Promise<string> {
  if (name !== basename(name)) throw new DwError('INVALID_INPUT', `a file name is one path segment, got ${JSON.stringify(name)}`)
  if (output === undefined) return name
  const info = await stat(output).catch(() => undefined)
  if (info?.isDirectory() === true) return join(output, name)
  if (await stat(dirname(output)).catch(() => undefined) === undefined) throw new DwError('INVALID_INPUT', `no such directory: ${dirname(output)}`)
  return output
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

function counter (onBytes: (n: number) => void): { hash: () => string, count: () => number, tap: Transform } {
  const hash = createHash('sha256')
  let count = 0
  const tap = new Transform({
    transform (chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      count += chunk.length
      onBytes(chunk.length)
      done(null, chunk)
    }
  })
  return { hash: () => hash.digest('hex'), count: () => count, tap }
}

/** Moves the finished temp file into place; without --force, never over a file that appeared meanwhile. */
async function publish (temp: string, target: string, force: boolean): Promise<void> {
  if (force) return await rename(temp, target)
  try {
    await link(temp, target)
  } catch (err: any) {
    if (err?.code === 'EEXIST') throw new DwError('CONFLICT', `${target} already exists; add --force to overwrite it`)
    throw err
  }
  await rm(temp, { force: true })
}

/**
 * Downloads the file at API `path` (named `name`) to `-o`, ./NAME or
 * stdout: streamed into a temp file beside the target, checked against the
 * sha256 the node declares, then moved into place.
 */
export async function download (path: string, name: string, options: GetOptions): Promise<void> {
  const toStdout = options.output === '-'
  const target = toStdout ? '-' : await targetPath(name, options.output)
  if (!toStdout && options.force !== true && await exists(target)) {
    throw new DwError('CONFLICT', `${target} already exists; add --force to overwrite it`)
  }
  const client = await connect(options)
  const response = await client.stream('GET', path) as IncomingMessage
  const bar = progress(`downloading ${name}`, Number(response.headers['content-length'] ?? 0))
  const expected = response.headers['x-content-sha256']
  const { hash, count, tap } = counter(n => bar.add(n))
  if (toStdout) {
    await pipeline(response, tap, process.stdout, { end: false }).finally(() => bar.done())
    return
  }
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.part`)
  const cleanUp = (): void => { void rm(temp, { force: true }).finally(() => process.exit(130)) }
  process.once('SIGINT', cleanUp)
  try {
    await pipeline(response, tap, createWriteStream(temp, { flags: 'wx' })).finally(() => bar.done())
    const actual = hash()
    if (expected !== undefined && actual !== expected) {
      throw new DwError('INTEGRITY_MISMATCH', `${name} arrived damaged (sha256 ${actual}, expected ${expected}); nothing was written`)
    }
    await publish(temp, target, options.force === true)
    if (options.json === true) return json({ path: target, size: count(), sha256: actual })
    process.stdout.write(`saved ${name} (${bytes(count())}, sha256 verified) to ${target}\n`)
  } finally {
    process.off('SIGINT', cleanUp)
    await rm(temp, { force: true })
  }
}

/** A `get` command: the arguments that name the file, then -o, --force and the connection options. */
export function getCommand (description: string, args: string[]): Command {
  const command = apiCommand('get', description)
  for (const arg of args) command.argument(arg)
  return command
    .option('-o, --output <path>', 'where to write it (default: ./NAME; "-" for stdout)')
    .option('--force', 'overwrite an existing file')
}

/** `get` for a file of a dataset's or model's version. */
export function versionFileGetCommand (kind?: 'dataset' | 'model'): Command {
  return withModelFlag(getCommand('download one file of a version (streamed, checked against its sha256)', [`<${kind ?? 'dataset'}-id>`, '<version-id>', '<name>']), kind)
    .action(async (id: string, versionId: string, name: string, options: GetOptions) => {
      const which = kindOf(kind, options)
      checkId(id, which)
      checkId(versionId, 'version', `dw ${which} show ${id} lists them`)
      await download(`${recordPath(which, id)}/versions/${encodeURIComponent(versionId)}/files/${encodeURIComponent(name)}`, name, options)
    })
}

/** `dw file get` (`--model` for models), and `dw dataset file get` / `dw model file get`. */
export function fileCommand (kind?: 'dataset' | 'model'): Command {
  return new Command('file').description(kind === undefined ? 'files of dataset and model versions' : `files of a ${kind}'s versions`)
    .addCommand(versionFileGetCommand(kind))
}
