// `dw status` and `dw dataset availability` while a pinned file arrives from
// a peer, and once it is here (split from files.test.ts, so that neither file
// comes near tap's per-file time limit on a loaded machine).
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { eventually } from '../helpers/mesh.ts'
import { tempDir } from '../helpers/tmp.ts'
import { dw, dwJson, initialised, rosterReached, started } from './helpers.ts'

void t.test('a pinned file arriving from a peer: transfer progress and availability', async (t) => {
  const root = await tempDir(t, 'dw-files-')
  const alpha = await initialised(t, 'alpha')
  const beta = await initialised(t, 'beta', { join: true })
  // Beta receives slowly, and alpha is frozen (SIGSTOP) once bytes flow, so
  // the transfer is still running when status looks, however loaded the machine.
  const configPath = join(beta, 'config.json')
  const config = JSON.parse(await readFile(configPath, 'utf8'))
  // Beta fetches only what it pins: with background copies (docs/files.md,
  // "Copies") it would fetch the file on its own, to keep two copies of it.
  await writeFile(configPath, JSON.stringify({ ...config, transfers: { bytesPerSecond: 128 * 1024 }, files: { copy: false } }))
  const nodeA = await started(t, alpha)
  const nodeB = await started(t, beta)
  const addressOf = async (data: string): Promise<string> => (await dwJson(['status', '--data', data])).sync.addresses[0]
  // Alpha founded the mesh; beta joins it once alpha (full) adds it to the roster.
  t.equal((await dw(['peer', 'add', await addressOf(beta), '--name', 'beta', '--role', 'full', '--data', alpha])).code, 0)
  t.equal((await dw(['peer', 'add', await addressOf(alpha), '--name', 'alpha', '--data', beta])).code, 0)
  await eventually(async () => (await dwJson(['peer', 'ls', '--data', beta]))[0]?.connected === true, 20_000, 'beta to connect to alpha')
  t.equal(await rosterReached(beta), 'full', 'beta holds the roster naming it')

  const big = randomBytes(2 * 1024 * 1024)
  await writeFile(join(root, 'big.bin'), big)
  const dataset = await dwJson(['dataset', 'create', 'Radar', '--data', alpha])
  const version = await dwJson(['version', 'add', dataset.id, join(root, 'big.bin'), '--data', alpha])
  const bigSha = version.files[0].sha256 as string
  await eventually(async () => {
    if ((await dw(['dataset', 'show', dataset.id, '--data', beta])).code === 0) return true
    await dw(['sync', '--timeout', '5', '--data', beta])
    return false
  }, 30_000, 'the dataset to reach beta')

  const before = await dwJson(['dataset', 'availability', dataset.id, '--data', beta])
  t.match(before, [{ versionId: version.id, complete: false, files: [{ name: 'big.bin', present: false, peers: [nodeA.peerId] }] }])
  const text = await dw(['dataset', 'availability', dataset.id, '--data', beta])
  t.match(text.stdout, /big\.bin\s+2\.0 MiB\s+no\s+alpha\s+1\/2 \(below target\)\s+alpha\n/, 'peers by their name in the peer book; one copy of two, at alpha')

  t.equal((await dw(['pin', 'add', 'dataset', dataset.id, '--data', beta])).code, 0)
  // Once bytes flow, alpha is frozen while `dw status` looks, so the transfer
  // is still in progress however long the command takes to start. Unless it
  // takes over 10 s: beta then drops the silent peer and the transfer leaves
  // the list until it is tried again, so look again.
  let status: Awaited<ReturnType<typeof dw>> | undefined
  await eventually(async () => {
    const [transfer] = (await dwJson(['status', '--data', beta])).sync.transfers
    if (!(transfer?.total !== undefined && transfer.done > 0 && transfer.done < transfer.total)) return false
    nodeA.child.kill('SIGSTOP')
    try {
      status = await dw(['status', '--data', beta])
    } finally {
      nodeA.child.kill('SIGCONT')
    }
    return /\ntransfers:\nFILE SHA256/.test(status.stdout)
  }, 90_000, 'a status taken while the transfer is under way')
  if (status === undefined) throw new Error('unreachable: eventually() saw a status')
  t.match(status.stdout, /\ntransfers:\nFILE SHA256\s+FROM\s+DONE\s+TOTAL\s+PERCENT\n/)
  // The bytes already in flight when alpha froze may complete the file before the row leaves the list: 100% is a fine answer too.
  t.match(status.stdout, new RegExp(`${bigSha}\\s+alpha\\s+\\d+(\\.\\d)? (B|KiB|MiB)\\s+2\\.0 MiB\\s+\\d{1,3}%\\n`), 'bytes done of total, with a percentage')

  await eventually(async () => (await dwJson(['dataset', 'availability', dataset.id, '--data', beta]))[0].complete === true, 90_000, 'the file to arrive')
  const after = await dw(['dataset', 'availability', dataset.id, '--data', beta])
  t.match(after.stdout, /complete here: yes\n/)
  t.match(after.stdout, /big\.bin\s+2\.0 MiB\s+yes\s+alpha\s+2\/2\s+(alpha, beta|beta, alpha)\n/)
  const done = await dwJson(['status', '--data', beta])
  t.same([done.sync.transfers, done.sync.wanted], [[], []], 'nothing in flight or waiting once it is here')
  t.ok((await dwJson(['status', '--data', alpha])).sync.blobBytesOut >= big.length, 'alpha counts the bytes it served')
  t.match((await dw(['status', '--data', alpha])).stdout, /served to peers:\s+2\.0 MiB\n/)
})
