import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp.ts'
import { dw, dwJson, initialised, started } from './helpers.ts'

void t.test('datasets, versions and files through the CLI', async (t) => {
  const data = await initialised(t, 'files')
  await started(t, data)
  const at = ['--data', data]
  const work = await tempDir(t)

  const created = await dwJson(['dataset', 'create', 'Ice cores 2026', '--description', 'Ross Island cores', '--tag', 'ice', '--tag', 'raw', '--meta', 'site=ross', '--meta', 'depth=120m', ...at])
  t.match(created, { name: 'Ice cores 2026', description: 'Ross Island cores', tags: ['ice', 'raw'], metadata: { site: 'ross', depth: '120m' } })
  const other = await dwJson(['dataset', 'create', 'Weather', '--tag', 'met', ...at])

  t.test('ls filters and prints a table', async (t) => {
    const all = await dwJson(['dataset', 'ls', ...at])
    t.same(all.map((d: any) => d.name).sort(), ['Ice cores 2026', 'Weather'])
    t.same((await dwJson(['dataset', 'ls', '--tag', 'ice', ...at])).map((d: any) => d.id), [created.id])
    t.same((await dwJson(['dataset', 'ls', '--q', 'weath', ...at])).map((d: any) => d.id), [other.id])
    t.same((await dwJson(['dataset', 'ls', '--owner', 'admin', ...at])).length, 2, '--owner takes a username')
    const table = await dw(['dataset', 'ls', ...at])
    t.match(table.stdout, /^ID\s+NAME\s+TAGS\s+OWNER\s+UPDATED/)
    t.match(table.stdout, /Ice cores 2026\s+ice, raw\s+admin/)
  })

  t.test('version add of two files, then byte-identical downloads', async (t) => {
    const big = randomBytes(3 * 1024 * 1024 + 17)
    const small = Buffer.from('station,temp\nross,-21.5\n')
    await writeFile(join(work, 'cores.bin'), big)
    await writeFile(join(work, 'stations.csv'), small)

    const version = await dwJson(['version', 'add', created.id, join(work, 'cores.bin'), join(work, 'stations.csv'), '--note', 'first cut ✓ Ross Ø', ...at])
    t.match(version, { note: 'first cut ✓ Ross Ø' })
    t.same(version.files.map((f: any) => [f.name, f.size, f.mediaType]), [['cores.bin', big.length, 'application/octet-stream'], ['stations.csv', small.length, 'text/csv']])

    const shown = await dw(['dataset', 'show', created.id, ...at])
    t.match(shown.stdout, /description:\s+Ross Island cores/)
    t.match(shown.stdout, /site = ross/)
    t.match(shown.stdout, new RegExp(`${version.id}.*cores\\.bin, stations\\.csv.*first cut`))

    const out = join(work, 'out')
    await mkdir(out)
    const got = await dw(['file', 'get', created.id, version.id, 'cores.bin', '-o', out, ...at])
    t.equal(got.code, 0, got.stderr)
    t.match(got.stdout, 'sha256 verified')
    t.ok((await readFile(join(out, 'cores.bin'))).equals(big), 'cores.bin comes back byte-identical')

    const plain = await dw(['file', 'get', created.id, version.id, 'stations.csv', ...at], { cwd: out })
    t.equal(plain.code, 0, plain.stderr)
    t.ok((await readFile(join(out, 'stations.csv'))).equals(small), 'stations.csv comes back byte-identical, to ./NAME by default')

    const refused = await dw(['file', 'get', created.id, version.id, 'stations.csv', ...at], { cwd: out })
    t.not(refused.code, 0, 'never overwrites without --force')
    t.match(refused.stderr, 'already exists; add --force')

    await writeFile(join(out, 'stations.csv'), 'stale')
    t.equal((await dw(['file', 'get', created.id, version.id, 'stations.csv', '--force', ...at], { cwd: out })).code, 0)
    t.ok((await readFile(join(out, 'stations.csv'))).equals(small), '--force replaces the file')
    t.same((await readdir(out)).sort(), ['cores.bin', 'stations.csv'], 'no temp files left behind')

    const piped = await dw(['file', 'get', created.id, version.id, 'stations.csv', '-o', '-', ...at])
    t.equal(piped.stdout, small.toString(), '-o - writes to stdout')

    const missingName = await dw(['file', 'get', created.id, version.id, 'nope.csv', '-o', out, ...at])
    t.not(missingName.code, 0)
    t.match(missingName.stderr, 'has no file named "nope.csv"')

    const versions = await dwJson(['version', 'ls', created.id, ...at])
    t.same(versions.map((v: any) => v.id), [version.id])
  })

  t.test('errors: missing local file, unknown and malformed ids', async (t) => {
    const missing = await dw(['version', 'add', created.id, join(work, 'not-there.csv'), ...at])
    t.not(missing.code, 0)
    t.match(missing.stderr, `no such file: ${join(work, 'not-there.csv')}`)

    await writeFile(join(work, 'x.csv'), 'a\n')
    const unknownId = '01900000-0000-7000-8000-000000000000'
    const noDataset = await dw(['version', 'add', unknownId, join(work, 'x.csv'), ...at])
    t.not(noDataset.code, 0)
    t.match(noDataset.stderr, `dataset ${unknownId} not found`)

    const show = await dw(['dataset', 'show', unknownId, ...at])
    t.not(show.code, 0)
    t.match(show.stderr, 'not found (NOT_FOUND)')

    const malformed = await dw(['dataset', 'show', 'not-an-id', ...at])
    t.not(malformed.code, 0)
    t.match(malformed.stderr, /uuid/)

    const badMeta = await dw(['dataset', 'create', 'x', '--meta', 'novalue', ...at])
    t.not(badMeta.code, 0)
    t.match(badMeta.stderr, '--meta wants key=value')
  })

  t.test('rm deletes; the dataset is gone from ls and show says so', async (t) => {
    const rm = await dw(['dataset', 'rm', other.id, ...at])
    t.equal(rm.code, 0, rm.stderr)
    t.same((await dwJson(['dataset', 'ls', ...at])).map((d: any) => d.id), [created.id])
    t.match((await dwJson(['dataset', 'ls', '--deleted', ...at])).map((d: any) => d.id).sort(), [created.id, other.id].sort())
    const show = await dw(['dataset', 'show', other.id, ...at])
    t.not(show.code, 0)
    t.match(show.stderr, 'was deleted')
  })
})
