import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { mediaTypeOf } from '../media-types.ts'
import { multipartBody, type UploadFile } from '../multipart.ts'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { bytes, fields, json, table } from '../output.ts'
import { progress } from '../progress.ts'
import { versionTable, type Version } from './dataset.ts'

interface VersionOptions extends ConnectionOptions { model?: boolean }
interface AddOptions extends VersionOptions { note?: string }

export function recordBase (options: VersionOptions, id: string): string {
  return `/${options.model === true ? 'models' : 'datasets'}/${encodeURIComponent(id)}`
}

/** Checks every local file before any byte is sent: a typo should not cost a half-finished upload. */
async function localFiles (paths: string[]): Promise<UploadFile[]> {
  const files: UploadFile[] = []
  for (const path of paths) {
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new DwError('INVALID_INPUT', err.code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${err.message}`)
    })
    if (!info.isFile()) throw new DwError('INVALID_INPUT', `${path} is not a regular file`)
    const name = basename(path)
    if (/[\u0000-\u001f\u007f\\]/.test(name)) throw new DwError('INVALID_INPUT', `cannot upload ${JSON.stringify(name)}: rename it without control characters or "\\"`)
    if (files.some(f => f.name === name)) throw new DwError('INVALID_INPUT', `two files named ${name}: a version holds each name once`)
    files.push({ name, path, size: info.size, mediaType: mediaTypeOf(path) })
  }
  return files
}

function add (): Command {
  return apiCommand('add', 'add a version: upload one or more files (streamed from disk)')
    .argument('<dataset-id>')
    .argument('<file...>')
    .option('--note <text>', 'what changed in this version')
    .option('--model', 'the id is a model, not a dataset')
    .action(async (id: string, paths: string[], options: AddOptions) => {
      const files = await localFiles(paths)
      const client = await connect(options)
      const base = recordBase(options, id)
      // Before the upload: a node that refuses mid-stream closes the socket, which hides its message.
      await client.request('GET', base)
      const total = files.reduce((n, f) => n + f.size, 0)
      const bar = progress(`uploading ${files.length} file${files.length === 1 ? '' : 's'}`, total)
      const body = multipartBody(options.note === undefined ? {} : { note: options.note }, files, n => bar.add(n))
      let version: Version
      try {
        version = await client.request<Version>('POST', `${base}/versions`, {
          body: body.body,
          headers: { 'content-type': body.contentType, 'content-length': String(body.length) }
        })
      } finally {
        bar.done()
      }
      if (options.json === true) return json(version)
      fields([['version', version.id], ['created', version.createdAt], ['note', version.note]])
      table(version.files, [
        { header: 'FILE', value: f => f.name },
        { header: 'SIZE', value: f => bytes(f.size) },
        { header: 'TYPE', value: f => f.mediaType },
        { header: 'SHA256', value: f => f.sha256 }
      ])
    })
}

function list (): Command {
  return apiCommand('ls', 'list the versions of a dataset')
    .argument('<dataset-id>')
    .option('--model', 'the id is a model, not a dataset')
    .action(async (id: string, options: VersionOptions) => {
      const client = await connect(options)
      const record = await client.request<{ versions: Version[] }>('GET', recordBase(options, id))
      if (options.json === true) return json(record.versions)
      versionTable(record.versions)
    })
}

export function versionCommand (): Command {
  return new Command('version').description('versions of datasets and models')
    .addCommand(add())
    .addCommand(list())
}
