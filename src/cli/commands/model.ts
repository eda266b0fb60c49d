import { Command, InvalidArgumentError } from 'commander'
import { apiCommand, connect, type ConnectionOptions } from '../options.ts'
import { fields, json, table } from '../output.ts'
import { availabilityCommand } from './availability.ts'
import { namedCreateCommand, namedHead, namedTail } from './dataset.ts'
import { fileCommand } from './file.ts'
import { checkId, keyValue, listCommand, nameOr, printMap, recordPath, removeCommand, setCommand, showCommand, type RecordView } from './records.ts'
import { versionCommand } from './version.ts'

interface TrainingEntry { id: string, at: string, by: string, byName?: string, note: string, versionId?: string, params: Record<string, unknown>, metrics: Record<string, number> }

function number (flag: string): (value: string, key: string) => number {
  return (value, key) => {
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} wants name=number, got ${key}=${JSON.stringify(value)}`)
    return n
  }
}

/** A training parameter is JSON when it reads as JSON (`lr=0.01`, `layers=[64,32]`), else text (`optimizer=adam`). */
function jsonOrText (value: string): unknown {
  try {
    return JSON.parse(value)
  } catch {
    return value
  }
}

function trainingTable (entries: TrainingEntry[]): void {
  table(entries, [
    { header: 'AT', value: e => e.at },
    { header: 'BY', value: e => nameOr(e.byName, e.by) },
    { header: 'VERSION', value: e => e.versionId ?? '' },
    { header: 'METRICS', value: e => Object.entries(e.metrics ?? {}).map(([k, v]) => `${k}=${v}`) },
    { header: 'NOTE', value: e => e.note }
  ], '(no training runs)')
}

interface TrainingOptions extends ConnectionOptions { note?: string, modelVersion?: string, param?: Record<string, unknown>, metric?: Record<string, number> }

function trainingCommand (): Command {
  const add = apiCommand('add', 'record a training run of a model (owner or admin): parameters, metrics, the version it produced')
    .argument('<model-id>')
    .option('--note <text>', 'what this run was')
    // Not --version: that is dw's own flag.
    .option('--model-version <version-id>', 'the model version this run produced')
    .option('--param <key=value>', 'a training parameter, JSON or text (repeatable): --param lr=0.01 --param optimizer=adam', keyValue('--param', jsonOrText))
    .option('--metric <name=number>', 'a metric of the run (repeatable): --metric accuracy=0.93', keyValue('--metric', number('--metric')))
    .action(async (id: string, options: TrainingOptions) => {
      checkId(id, 'model')
      if (options.modelVersion !== undefined) checkId(options.modelVersion, 'version', `dw model show ${id} lists them`)
      const client = await connect(options)
      const entry = await client.request<TrainingEntry>('POST', `${recordPath('model', id)}/training`, {
        json: { note: options.note, versionId: options.modelVersion, params: options.param, metrics: options.metric }
      })
      if (options.json === true) return json(entry)
      fields([['training run', entry.id], ['at', entry.at], ['version', entry.versionId], ['note', entry.note]])
      printMap('params', entry.params)
      printMap('metrics', entry.metrics)
    })
  const list = apiCommand('ls', 'list the training runs of a model, oldest first')
    .argument('<model-id>')
    .action(async (id: string, options: ConnectionOptions) => {
      checkId(id, 'model')
      const client = await connect(options)
      const model = await client.request<{ training?: TrainingEntry[] }>('GET', recordPath('model', id))
      if (options.json === true) return json(model.training ?? [])
      trainingTable(model.training ?? [])
    })
  return new Command('training').description('a model\'s training history (append-only)').addCommand(add).addCommand(list)
}

export function modelCommand (): Command {
  const create = namedCreateCommand('model',
    c => c.option('--framework <name>', 'what it is built with (pytorch, onnx, sklearn...)')
      .option('--metric <name=number>', 'a metric of the model (repeatable)', keyValue('--metric', number('--metric'))),
    (o: { framework?: string, metric?: Record<string, number> }) => ({ framework: o.framework, metrics: o.metric }))
  const show = showCommand('model', 'show a model with its versions and training history', {
    head: (m: RecordView) => [...namedHead(m), ['framework', m.framework]],
    tail: (m: RecordView) => {
      printMap('metrics', m.metrics)
      namedTail(m)
      process.stdout.write('\ntraining:\n')
      trainingTable((m.training ?? []) as TrainingEntry[])
    }
  })
  return new Command('model').description('manage AI models: versions of their files and their training history')
    .addCommand(create)
    .addCommand(listCommand('model'))
    .addCommand(show)
    .addCommand(removeCommand('model'))
    .addCommand(setCommand('model'))
    .addCommand(versionCommand('model'))
    .addCommand(fileCommand('model'))
    .addCommand(trainingCommand())
    .addCommand(availabilityCommand('model'))
}
