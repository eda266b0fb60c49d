import { Command } from 'commander'
import { apiCommand, collect, connect, type ConnectionOptions } from '../options.ts'
import { fields, json } from '../output.ts'
import { availabilityCommand } from './availability.ts'
import { fileCommand } from './file.ts'
import { keyValue, listCommand, printMap, removeCommand, setCommand, showCommand, versionTable, type RecordView, type Version } from './records.ts'
import { versionCommand } from './version.ts'

interface CreateOptions extends ConnectionOptions { description?: string, tag?: string[], meta?: Record<string, string> }

/** The options datasets and models are created with; `extra` adds a model's own. */
export function namedCreateCommand (kind: 'dataset' | 'model', extra: (command: Command) => Command = c => c, body: (options: any) => Record<string, unknown> = () => ({})): Command {
  const command = apiCommand('create', `create a ${kind}`)
    .argument('<name>')
    .option('--description <text>', kind === 'dataset' ? 'what the data is' : 'what the model does')
    .option('--tag <tag>', 'a tag (repeatable)', collect)
    .option('--meta <key=value>', 'a custom metadata field (repeatable)', keyValue('--meta'))
  return extra(command)
    .action(async (name: string, options: CreateOptions) => {
      const client = await connect(options)
      const record = await client.request<RecordView>('POST', `/${kind}s`, {
        json: { name, description: options.description, tags: options.tag === undefined ? undefined : [...new Set(options.tag)], metadata: options.meta, ...body(options) }
      })
      if (options.json === true) return json(record)
      fields([['id', record.id], ['name', record.name], ['tags', record.tags]])
    })
}

/** What datasets and models show first: name, description, tags. */
export function namedHead (record: RecordView): Array<[string, unknown]> {
  return [['name', record.name], ['description', record.description], ['tags', record.tags]]
}

/** What datasets and models show last: custom metadata, then the versions with their authors. */
export function namedTail (record: RecordView): void {
  printMap('metadata', record.metadata)
  process.stdout.write('\n')
  versionTable((record.versions ?? []) as Version[])
}

export function datasetCommand (): Command {
  return new Command('dataset').description('manage datasets')
    .addCommand(namedCreateCommand('dataset'))
    .addCommand(listCommand('dataset'))
    .addCommand(showCommand('dataset', 'show a dataset with its versions', { head: namedHead, tail: namedTail }))
    .addCommand(removeCommand('dataset'))
    .addCommand(setCommand('dataset'))
    .addCommand(versionCommand('dataset'))
    .addCommand(fileCommand('dataset'))
    .addCommand(availabilityCommand())
}
