import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Command } from 'commander'
import { DwError } from '../../errors.ts'
import type { NodeClient } from '../client.ts'
import { mediaTypeOf } from '../media-types.ts'
import { multipartBody, type UploadFile } from '../multipart.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, fields, json, table } from '../output.ts'
import { progress } from '../progress.ts'
import { checkId, recordPath, versionTable, type FileRef, type Version } from './records.ts'

type VersionedKind = 'dataset' | 'model'
interface VersionOptions extends ConnectionOptions { model?: boolean }
interface AddOptions extends VersionOptions { note?: string }

/** The kind a command works on: its own, or for the kind-neutral `dw version`/`dw file`, dataset unless `--model`. */
export function kindOf (kind: VersionedKind | undefined, options: VersionOptions): VersionedKind {
  return kind ?? (options.model === true ? 'model' : 'dataset')
}

/** `dw version add|ls` and `dw file get` take `--model`; `dw model ...` does not need it. */
export function withModelFlag (command: Command, kind: VersionedKind | undefined): Command {
  return kind === undefined ? command.option('--model', 'the id is a model, not a dataset') : command
}

/** Checks every local file before any byte is sent: a typo should not cost a half-finished upload. */
export async function localFiles (paths: string[], holder: string): Promise<UploadFile[]> {
  const files: UploadFile[] = []
  for (const path of paths) {
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new DwError('INVALID_INPUT', err.code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${err.message}`)
    })
    if (info.isDirectory()) throw new DwError('INVALID_INPUT', `${path} is not a regular file but a directory: name the files in it (for example ${path.replace(/\/+$/, '')}/*)`)
    if (!info.isFile()) throw new DwError('INVALID_INPUT', `${path} is not a regular file`)
    const name = basename(path)
    if (/[\u0000-\u001f\u007f\\]/.test(name)) throw new DwError('INVALID_INPUT', `cannot upload ${JSON.stringify(name)}: rename it without control characters or "\\"`)
    if (files.some(f => f.name === name)) throw new DwError('INVALID_INPUT', `two files named ${name}: ${holder} holds each name once`)
    files.push({ name, path, size: info.size, mediaType: mediaTypeOf(path) })
  }
  return files
}

/**
 * Streams `files` from disk to a multipart route of the record at `base`,
 * with a progress bar for large uploads. The record is read first: a node
 * that refuses mid-stream closes the socket, which hides its message.
 */
export async function uploadFiles<T> (client: NodeClient, base: string, route: string, files: UploadFile[], form: Record<string, string> = {}): Promise<T> {
  await client.request('GET', base)
  const total = files.reduce((n, f) => n + f.size, 0)
  const bar = progress(`uploading ${files.length} file${files.length === 1 ? '' : 's'}`, total)
  const body = multipartBody(form, files, n => bar.add(n))
  try {
    return await client.request<T>('POST', `${base}${route}`, {
      body: body.body,
      headers: { 'content-type': body.contentType, 'content-length': String(body.length) }
    })
  } finally {
    bar.done()
  }
}

export function fileTable (files: FileRef[], empty = '(no files)'): void {
  table(files, [
    { header: 'FILE', value: f => f.name },
    { header: 'SIZE', value: f => bytes(f.size) },
    { header: 'TYPE', value: f => f.mediaType },
    ...(files.some(f => f.present !== undefined) ? [{ header: 'HERE', value: (f: FileRef) => f.present === true ? 'yes' : 'no' }] : []),
    { header: 'SHA256', value: f => f.sha256 }
  ], empty)
}

/** `add`: a new version of a dataset or model from local files. */
export function versionAddCommand (kind?: VersionedKind): Command {
  const command = apiCommand('add', 'add a version: upload one or more files (streamed from disk)')
    .argument(`<${kind ?? 'dataset'}-id>`)
    .argument('<file...>')
    .option('--note <text>', 'what changed in this version')
  return withModelFlag(command, kind)
    .action(async (id: string, paths: string[], options: AddOptions) => {
      const which = kindOf(kind, options)
      checkId(id, which)
      const files = await localFiles(paths, 'a version')
      const client = await connect(options)
      const version = await uploadFiles<Version>(client, recordPath(which, id), '/versions', files, options.note === undefined ? {} : { note: options.note })
      if (options.json === true) return json(version)
      fields([['version', version.id], ['created', version.createdAt], ['note', version.note]])
      fileTable(version.files)
    })
}

export function versionListCommand (kind?: VersionedKind): Command {
  return withModelFlag(apiCommand('ls', `list the versions of a ${kind ?? 'dataset'}`).argument(`<${kind ?? 'dataset'}-id>`), kind)
    .action(async (id: string, options: VersionOptions) => {
      const which = kindOf(kind, options)
      checkId(id, which)
      const client = await connect(options)
      const record = await client.request<{ versions: Version[] }>('GET', recordPath(which, id))
      if (options.json === true) return json(record.versions)
      versionTable(record.versions)
    })
}

/** `dw version` (`--model` for models), and `dw dataset version` / `dw model version`. */
export function versionCommand (kind?: VersionedKind): Command {
  return new Command('version').description(kind === undefined ? 'versions of datasets and models' : `versions of a ${kind}`)
    .addCommand(versionAddCommand(kind))
    .addCommand(versionListCommand(kind))
}
