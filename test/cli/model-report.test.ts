import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp.ts'
import { dw, dwJson, initialised, started } from './helpers.ts'

const UNKNOWN_ID = '01900000-0000-7000-8000-000000000000'

void t.test('models and reports through the CLI', async (t) => {
  const data = await initialised(t, 'labs')
  await started(t, data)
  const at = ['--data', data]
  const work = await tempDir(t)
  const weights = randomBytes(2 * 1024 * 1024 + 3)
  await writeFile(join(work, 'weights.onnx'), weights)
  await writeFile(join(work, 'config.json'), '{"layers": 3}\n')

  const model = await dwJson(['model', 'create', 'Seabird counter', '--framework', 'onnx', '--metric', 'f1=0.81', '--tag', 'vision', '--description', 'counts birds on cliffs', ...at])
  t.match(model, { kind: 'model', name: 'Seabird counter', framework: 'onnx', metrics: { f1: 0.81 }, tags: ['vision'], ownerName: 'admin@labs' })
  let version: any

  t.test('model ls, version add, file get byte-identical', async (t) => {
    const list = await dw(['model', 'ls', ...at])
    t.equal(list.code, 0, list.stderr)
    t.match(list.stdout, /^ID\s+NAME\s+TAGS\s+OWNER\s+UPDATED\n/)
    t.match(list.stdout, new RegExp(`${model.id}\\s+Seabird counter\\s+vision\\s+admin@labs`))
    await dwJson(['model', 'create', 'Second', ...at])
    const limited = await dw(['model', 'ls', '--limit', '1', ...at])
    t.match(limited.stdout, '1 of 2 models (--limit)')

    version = await dwJson(['model', 'version', 'add', model.id, join(work, 'weights.onnx'), join(work, 'config.json'), '--note', 'trained on 2025 photos', ...at])
    t.same(version.files.map((f: any) => [f.name, f.size, f.mediaType]), [['weights.onnx', weights.length, 'application/onnx'], ['config.json', 14, 'application/json']])
    const out = join(work, 'out')
    await mkdir(out)
    const got = await dw(['model', 'file', 'get', model.id, version.id, 'weights.onnx', '-o', out, ...at])
    t.equal(got.code, 0, got.stderr)
    t.match(got.stdout, 'sha256 verified')
    t.ok((await readFile(join(out, 'weights.onnx'))).equals(weights), 'weights.onnx comes back byte-identical')
    t.same(await readdir(out), ['weights.onnx'], 'no temp files left behind')
    t.same((await dwJson(['model', 'version', 'ls', model.id, ...at])).map((v: any) => v.id), [version.id])
    t.same((await dwJson(['version', 'ls', model.id, '--model', ...at])).map((v: any) => v.id), [version.id], 'dw version --model still works')
  })

  t.test('training add, then show with versions, authors and training', async (t) => {
    const run = await dwJson(['model', 'training', 'add', model.id, '--model-version', version.id, '--param', 'lr=0.001', '--param', 'optimizer=adam', '--metric', 'f1=0.84', '--note', 'more puffins', ...at])
    t.match(run, { versionId: version.id, note: 'more puffins', params: { lr: 0.001, optimizer: 'adam' }, metrics: { f1: 0.84 } })
    const shown = await dw(['model', 'show', model.id, ...at])
    t.equal(shown.code, 0, shown.stderr)
    t.match(shown.stdout, /framework:\s+onnx/)
    t.match(shown.stdout, /owner:\s+admin@labs/)
    t.match(shown.stdout, /metrics:\n {2}f1 = 0\.81/)
    t.match(shown.stdout, /VERSION\s+CREATED\s+AUTHOR\s+FILES\s+SIZE\s+NOTE\n/)
    t.match(shown.stdout, new RegExp(`${version.id}\\s+\\S+\\s+admin@labs\\s+weights\\.onnx, config\\.json\\s+2\\.0 MiB\\s+trained on 2025 photos`), 'the version with its author by name')
    t.match(shown.stdout, /training:\nAT\s+BY\s+VERSION\s+METRICS\s+NOTE\n\S+\s+admin@labs\s+\S+\s+f1=0\.84\s+more puffins/)
    const json = await dwJson(['model', 'show', model.id, ...at])
    t.same(json.versions.map((v: any) => v.authorName), ['admin@labs'])
    t.same(json.training.map((e: any) => e.byName), ['admin@labs'])
  })

  t.test('report create, attach, show, file get byte-identical', async (t) => {
    await writeFile(join(work, 'body.json'), JSON.stringify({ finding: 'gulls over-counted', severity: 'medium' }))
    const report = await dwJson(['report', 'create', '--kind', 'bias', '--title', 'Gull bias', '--subject', `model:${model.id}@${version.id}`, '--body', `@${join(work, 'body.json')}`, ...at])
    t.match(report, { reportKind: 'bias', title: 'Gull bias', subject: { kind: 'model', id: model.id, versionId: version.id }, body: { finding: 'gulls over-counted' }, files: [] })
    const chart = randomBytes(300_000)
    await writeFile(join(work, 'chart.png'), chart)
    await writeFile(join(work, 'notes.md'), '# Notes\n')
    const attached = await dw(['report', 'attach', report.id, join(work, 'chart.png'), join(work, 'notes.md'), ...at])
    t.equal(attached.code, 0, attached.stderr)
    t.match(attached.stdout, `attached 2 files to report ${report.id}\nFILE`)
    t.match(attached.stdout, /chart\.png\s+293\.0 KiB\s+image\/png/)

    const shown = await dw(['report', 'show', report.id, ...at])
    t.match(shown.stdout, /title:\s+Gull bias\nkind:\s+bias\nsubject:\s+model:\S+@\S+\n/)
    t.match(shown.stdout, /body:\n {2}\{\n {4}"finding": "gulls over-counted",/)
    t.match(shown.stdout, /FILE\s+SIZE\s+TYPE\s+HERE\s+SHA256\nchart\.png\s+293\.0 KiB\s+image\/png\s+yes\s+[0-9a-f]{64}\nnotes\.md/)

    const out = join(work, 'report-out')
    await mkdir(out)
    const got = await dw(['report', 'file', 'get', report.id, 'chart.png', '-o', out, ...at])
    t.equal(got.code, 0, got.stderr)
    t.ok((await readFile(join(out, 'chart.png'))).equals(chart), 'chart.png comes back byte-identical')
    t.equal((await dw(['report', 'file', 'get', report.id, 'notes.md', '-o', '-', ...at])).stdout, '# Notes\n')

    const where = await dw(['report', 'availability', report.id, ...at])
    t.equal(where.code, 0, where.stderr)
    t.match(where.stdout, /^attachments {2}complete here: yes\nFILE\s+SIZE\s+HERE\s+PEERS\s+COPIES\s+HELD BY\nchart\.png\s+293\.0 KiB\s+yes\s+-/)
    t.match(await dwJson(['report', 'availability', report.id, ...at]), { complete: true, files: [{ name: 'chart.png', present: true, peers: [] }, { name: 'notes.md', present: true }] })

    const dataset = await dwJson(['dataset', 'create', 'Cliff photos', ...at])
    const about = await dwJson(['report', 'create', '--kind', 'xai', '--title', 'Saliency', '--subject', `dataset:${dataset.id}`, '--body', '{"method": "grad-cam"}', ...at])
    t.same(about.subject, { kind: 'dataset', id: dataset.id })
    t.equal((await dw(['report', 'availability', about.id, ...at])).stdout, '(no files)\n')
    const list = await dw(['report', 'ls', ...at])
    t.match(list.stdout, /^ID\s+TITLE\s+OWNER\s+UPDATED\n/)
    t.match(list.stdout, /Gull bias\s+admin@labs/)
    t.same((await dwJson(['report', 'ls', '--q', 'salien', ...at])).map((r: any) => r.id), [about.id])

    t.test('a second attachment of a name: refused, nothing attached', async (t) => {
      await writeFile(join(work, 'extra.txt'), 'extra')
      const again = await dw(['report', 'attach', report.id, join(work, 'extra.txt'), join(work, 'notes.md'), ...at])
      t.equal(again.code, 1)
      t.match(again.stderr, `dw: report ${report.id} already has a file named notes.md; a report holds each name once (upload it under another name) (CONFLICT)`)
      t.same((await dwJson(['report', 'show', report.id, ...at])).files.map((f: any) => f.name), ['chart.png', 'notes.md'])
    })
  })

  t.test('bad input: exit codes and messages', async (t) => {
    await mkdir(join(work, 'a-directory'), { recursive: true })
    const report = (await dwJson(['report', 'ls', ...at]))[0]
    const cases: Array<[string[], number, string | RegExp]> = [
      [['model', 'show', UNKNOWN_ID], 1, `dw: model ${UNKNOWN_ID} not found (NOT_FOUND)\n`],
      [['model', 'show', 'seabird'], 1, /^dw: not a model id: "seabird" \(ids are uuids.*dw model ls lists them\)\n$/],
      [['model', 'version', 'add', model.id, join(work, 'nope.onnx')], 1, `dw: no such file: ${join(work, 'nope.onnx')}\n`],
      [['model', 'version', 'add', model.id, join(work, 'a-directory')], 1, `dw: ${join(work, 'a-directory')} is not a regular file but a directory: name the files in it (for example ${join(work, 'a-directory')}/*)\n`],
      [['model', 'version', 'add', UNKNOWN_ID, join(work, 'config.json')], 1, `dw: model ${UNKNOWN_ID} not found (NOT_FOUND)\n`],
      [['model', 'file', 'get', model.id, version.id, 'nope.bin', '-o', work], 1, `has no file named "nope.bin" (NOT_FOUND)`],
      [['model', 'file', 'get', model.id, 'v1', 'weights.onnx'], 1, `dw: not a version id: "v1" (ids are uuids, like 0190c5e4-7b1a-7c3e-9f00-5a1b2c3d4e5f; dw model show ${model.id} lists them)\n`],
      [['model', 'create', 'x', '--metric', 'f1=high'], 1, '--metric wants name=number, got f1="high"'],
      [['model', 'training', 'add', model.id, '--model-version', UNKNOWN_ID], 1, `has no version ${UNKNOWN_ID} (INVALID_INPUT)`],
      [['report', 'create', '--kind', 'fairness', '--title', 't', '--subject', `model:${model.id}`, '--body', '{}'], 1, 'Allowed choices are bias, transformation, xai'],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', model.id, '--body', '{}'], 1, '--subject wants dataset:<id>[@<version-id>] or model:<id>[@<version-id>]'],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', `dataset:${UNKNOWN_ID}`, '--body', '{}'], 1, `dw: the report's subject does not exist: dataset ${UNKNOWN_ID} not found (INVALID_INPUT)\n`],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', `model:${model.id}`, '--body', '{"unclosed": '], 1, /^dw: --body is not JSON: /],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', `model:${model.id}`, '--body', '["a list"]'], 1, 'dw: --body must be a JSON object'],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', `model:${model.id}`, '--body', `@${join(work, 'missing.json')}`], 1, `dw: --body: no such file: ${join(work, 'missing.json')}\n`],
      [['report', 'create', '--kind', 'bias', '--title', 't', '--subject', `model:${model.id}`], 1, "required option '--body <json>' not specified"],
      [['report', 'attach', report.id, join(work, 'a-directory')], 1, 'is not a regular file but a directory'],
      [['report', 'attach', report.id, join(work, 'nope.pdf')], 1, `dw: no such file: ${join(work, 'nope.pdf')}\n`],
      [['report', 'attach', model.id, join(work, 'config.json')], 1, `dw: report ${model.id} not found (NOT_FOUND)\n`],
      [['report', 'file', 'get', report.id, 'nope.pdf', '-o', work], 1, `dw: report ${report.id} has no file named "nope.pdf" (NOT_FOUND)\n`],
      [['report', 'availability', model.id], 1, `dw: report ${model.id} not found (NOT_FOUND)\n`],
      [['report', 'availability', 'not-an-id'], 1, 'dw: not a report id: "not-an-id" (ids are uuids']
    ]
    for (const [args, code, message] of cases) {
      const run = await dw([...args, ...at])
      t.equal(run.code, code, `dw ${args.join(' ')}: exit ${code}`)
      t.match(run.stderr, message, `dw ${args.join(' ')}: ${String(message)}`)
    }
    const help = await dw(['report', 'create', '--help'])
    t.match(help.stdout, '--subject <subject>')
    t.match(help.stdout, 'dataset:<id>[@<version-id>]')
  })
})
