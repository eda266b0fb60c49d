import { readFile } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { DwError } from '../../errors.ts'
import { apiCommand, asOption, connect, type ConnectionOptions } from '../options.ts'
import { fields, json } from '../output.ts'
import { reportAvailabilityCommand } from './availability.ts'
import { download, getCommand, type GetOptions } from './file.ts'
import { checkId, listCommand, recordPath, removeCommand, setCommand, showCommand, type FileRef, type RecordView } from './records.ts'
import { fileTable, localFiles, uploadFiles } from './version.ts'

interface Subject { kind: 'dataset' | 'model', id: string, versionId?: string }

/** `dataset:<id>`, `dataset:<id>@<version-id>`, `model:<id>` or `model:<id>@<version-id>`. */
export function parseSubject (value: string): Subject {
  const m = /^(dataset|model):([^@]*)(?:@(.*))?$/.exec(value)
  if (m === null) throw new DwError('INVALID_INPUT', `--subject wants dataset:<id>[@<version-id>] or model:<id>[@<version-id>], got ${JSON.stringify(value)}`)
  const kind = m[1] as 'dataset' | 'model'
  const id = checkId(m[2] ?? '', kind)
  const versionId = m[3]
  return versionId === undefined ? { kind, id } : { kind, id, versionId: checkId(versionId, 'version', `dw ${kind} show ${id} lists them`) }
}

/** `--body` as JSON text, or `@file.json`: a JSON object either way. */
async function readBody (value: string): Promise<Record<string, unknown>> {
  let text = value
  if (value.startsWith('@')) {
    const path = value.slice(1)
    text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new DwError('INVALID_INPUT', err.code === 'ENOENT' ? `--body: no such file: ${path}` : err.code === 'EISDIR' ? `--body: ${path} is a directory, not a JSON file` : `--body: cannot read ${path}: ${err.message}`)
    })
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    throw new DwError('INVALID_INPUT', `--body${value.startsWith('@') ? ` (${value.slice(1)})` : ''} is not JSON: ${(err as Error).message}`)
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new DwError('INVALID_INPUT', '--body must be a JSON object, like {"finding": "..."}')
  return body as Record<string, unknown>
}

interface CreateOptions extends ConnectionOptions { kind: string, title: string, subject: Subject, body: string }

function create (): Command {
  return apiCommand('create', 'create a report about a dataset (version) or a model (version); attach files with dw report attach')
    .addOption(new Option('--kind <kind>', 'what the report is').choices(['bias', 'transformation', 'xai']).makeOptionMandatory())
    .requiredOption('--title <text>', 'its title')
    .requiredOption('--subject <subject>', 'what it is about: dataset:<id>[@<version-id>] or model:<id>[@<version-id>]', asOption(parseSubject))
    .requiredOption('--body <json>', 'its content: a JSON object, or @file.json')
    .action(async (options: CreateOptions) => {
      const body = await readBody(options.body)
      const client = await connect(options)
      const report = await client.request<RecordView>('POST', '/reports', {
        json: { reportKind: options.kind, title: options.title, subject: options.subject, body }
      })
      if (options.json === true) return json(report)
      fields([['id', report.id], ['title', report.title], ['kind', report.reportKind], ['subject', subjectText(report.subject)]])
    })
}

function subjectText (value: unknown): string {
  const s = (value ?? {}) as Partial<Subject>
  return `${s.kind ?? '?'}:${s.id ?? '?'}${s.versionId === undefined ? '' : `@${s.versionId}`}`
}

function attach (): Command {
  return apiCommand('attach', 'attach files to a report (its owner or an admin; streamed from disk); a name the report already has is refused')
    .argument('<report-id>')
    .argument('<file...>')
    .action(async (id: string, paths: string[], options: ConnectionOptions) => {
      checkId(id, 'report')
      const files = await localFiles(paths, 'a report')
      const client = await connect(options)
      const attached = await uploadFiles<{ files: FileRef[] }>(client, recordPath('report', id), '/files', files)
      if (options.json === true) return json(attached)
      process.stdout.write(`attached ${attached.files.length} file${attached.files.length === 1 ? '' : 's'} to report ${id}\n`)
      fileTable(attached.files)
    })
}

function fileGet (): Command {
  return getCommand('download one file of a report (streamed, checked against its sha256)', ['<report-id>', '<name>'])
    .action(async (id: string, name: string, options: GetOptions) => {
      checkId(id, 'report')
      await download(`${recordPath('report', id)}/files/${encodeURIComponent(name)}`, name, options)
    })
}

export function reportCommand (): Command {
  const show = showCommand('report', 'show a report: its subject, body and files', {
    head: r => [['title', r.title], ['kind', r.reportKind], ['subject', subjectText(r.subject)]],
    tail: r => {
      const body = JSON.stringify(r.body ?? {}, null, 2)
      process.stdout.write(`body:\n${body.split('\n').map(line => `  ${line}`).join('\n')}\n\n`)
      fileTable((r.files ?? []) as FileRef[], '(no files; attach some with dw report attach)')
    }
  })
  return new Command('report').description('bias, transformation and explainability (xai) reports about datasets and models')
    .addCommand(create())
    .addCommand(listCommand('report'))
    .addCommand(show)
    .addCommand(attach())
    .addCommand(new Command('file').description('files attached to a report').addCommand(fileGet()))
    .addCommand(reportAvailabilityCommand())
    .addCommand(removeCommand('report'))
    .addCommand(setCommand('report'))
}
