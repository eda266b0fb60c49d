import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp.ts'
import { dw, dwJson, initialised, started, startedWith } from './helpers.ts'

void t.test('dw backup of a running node, then dw restore into a new directory', async (t) => {
  const data = await initialised(t, 'ship')
  await started(t, data)
  const at = ['--data', data]
  const work = await tempDir(t)
  await writeFile(join(work, 'casts.bin'), randomBytes(70_000))
  const dataset = await dwJson(['dataset', 'create', 'CTD casts', ...at])
  await dwJson(['version', 'add', dataset.id, join(work, 'casts.bin'), ...at])

  const backups = join(work, 'backups')
  await mkdir(backups)
  const run = await dw(['backup', '--to', backups, ...at])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /^backup written to .*dw-backup-ship-.+\.tar \(.+\): \d+ records, 1 files \(.+\), verified\n$/)
  const [archive] = await readdir(backups)
  t.ok(archive !== undefined && archive.endsWith('.tar'), 'one archive, no partial file left')
  const path = join(backups, archive as string)
  const status = await dwJson(['status', ...at])
  t.equal(status.backup?.last?.ok, true, 'dw status shows the last backup')

  const again = await dw(['backup', '--to', path, ...at])
  t.not(again.code, 0, 'never over an existing archive')
  t.match(again.stderr, /already exists/)

  const restored = join(work, 'restored')
  const restore = await dw(['restore', '--from', path, '--data', restored])
  t.equal(restore.code, 0, restore.stderr)
  t.match(restore.stdout, /restored: .*restored/)
  t.match(restore.stdout, /files: +1 \(68\.4 KiB\)/)
  t.match(restore.stdout, /start it with: dw start --data .*restored/)
  t.same(JSON.parse(await readFile(join(restored, 'instance.json'), 'utf8')).restoredFrom !== undefined, true, 'the first start will renew the epoch')
  const node = await startedWith(t, restored)
  t.match(node.stderr(), /restored from dw-backup-ship-.+: it starts a new feed epoch/)
  const ls = await dwJson(['dataset', 'ls', '--data', restored])
  t.same(ls.items?.map((d: any) => d.name) ?? ls.map((d: any) => d.name), ['CTD casts'])

  const occupied = await dw(['restore', '--from', path, '--data', restored])
  t.not(occupied.code, 0)
  t.match(occupied.stderr, /is not empty: restore into a new directory/)
})
