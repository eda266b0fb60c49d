import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { NODE_TOKEN_FILE as nodeSide } from '../../src/node.ts'
import { NODE_TOKEN_FILE as cliSide } from '../../src/cli/client.ts'
import { multipartBody } from '../../src/cli/multipart.ts'
import { bytes, duration } from '../../src/cli/output.ts'
import { progress } from '../../src/cli/progress.ts'
import { tempDir } from '../helpers/tmp.ts'

async function collect (body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const chunk of body) chunks.push(chunk)
  return Buffer.concat(chunks)
}

void t.test('the CLI looks for the token file the node writes', async (t) => {
  t.equal(cliSide, nodeSide)
})

void t.test('the multipart body is exactly as long as announced, with names escaped', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'a.csv'), 'x,y\n1,2\n')
  await writeFile(join(dir, 'b.bin'), Buffer.alloc(300_000, 7))
  const files = [
    { name: 'a "quoted".csv', path: join(dir, 'a.csv'), size: 8, mediaType: 'text/csv' },
    { name: 'b.bin', path: join(dir, 'b.bin'), size: 300_000, mediaType: 'application/octet-stream' }
  ]
  let counted = 0
  const body = multipartBody({ note: 'ünïcode note' }, files, n => { counted += n })
  const bytesSent = await collect(body.body)
  t.equal(bytesSent.length, body.length)
  t.equal(counted, 300_008, 'progress counts file bytes')
  t.match(bytesSent.toString('latin1'), 'filename="a \\"quoted\\".csv"')
  t.match(body.contentType, /^multipart\/form-data; boundary=dw-[0-9a-f]{32}$/)
})

void t.test('a file that changes size during the upload aborts it', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'grows.txt'), 'twelve bytes')
  const body = multipartBody({}, [{ name: 'grows.txt', path: join(dir, 'grows.txt'), size: 5, mediaType: 'text/plain' }])
  await t.rejects(collect(body.body), { code: 'INVALID_INPUT', message: /changed while it was being uploaded/ })
})

void t.test('progress is silent off a terminal and for small transfers', async (t) => {
  const pipe = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream
  const quiet = progress('x', 1e9, pipe)
  quiet.add(1e9)
  quiet.done()
  t.equal((pipe as unknown as PassThrough).read(), null)

  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 60 }) as unknown as NodeJS.WriteStream
  const small = progress('x', 1000, tty)
  small.done()
  t.equal((tty as unknown as PassThrough).read(), null)
  const big = progress('up', 100 * 1024 * 1024, tty)
  big.add(50 * 1024 * 1024)
  big.done()
  t.match(String((tty as unknown as PassThrough).read()), /up \[#+-+\]\s+50% 50\.0 MiB\/100\.0 MiB/)
})

void t.test('human units', async (t) => {
  t.equal(bytes(512), '512 B')
  t.equal(bytes(1536), '1.5 KiB')
  t.equal(duration(59), '59s')
  t.equal(duration(3600 * 26 + 120), '1d 2h 2m')
})
