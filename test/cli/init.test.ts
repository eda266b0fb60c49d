import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { tempDir } from '../helpers/tmp.ts'
import { ADMIN_PASSWORD, dw, dwJson } from './helpers.ts'

const PEER_ID = /12D3KooW[1-9A-HJ-NP-Za-km-z]{44}/

void t.test('init prints the peer id, the multiaddrs and the HTTP address', async (t) => {
  const data = join(await tempDir(t), 'alpha')
  const run = await dw(['init', '--data', data, '--name', 'alpha', '--http', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/4101', '--listen', '/ip4/127.0.0.1/tcp/4102'],
    { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } })
  t.equal(run.code, 0, run.stderr)
  const peerId = PEER_ID.exec(run.stdout)?.[0]
  t.ok(peerId, 'prints a peer id')
  t.match(run.stdout, `/ip4/127.0.0.1/tcp/4101/p2p/${peerId}`)
  t.match(run.stdout, `/ip4/127.0.0.1/tcp/4102/p2p/${peerId}`)
  t.match(run.stdout, /http:\s+127\.0\.0\.1:0/)
  t.notMatch(run.stdout, ADMIN_PASSWORD, 'a given password is never echoed')
  const config = JSON.parse(await readFile(join(data, 'config.json'), 'utf8'))
  t.equal(config.name, 'alpha')
  t.same(config.listen, ['/ip4/127.0.0.1/tcp/4101', '/ip4/127.0.0.1/tcp/4102'])
})

void t.test('init --json and a second init on the same directory is refused', async (t) => {
  const data = join(await tempDir(t), 'beta')
  const env = { DW_ADMIN_PASSWORD: ADMIN_PASSWORD }
  const made = await dwJson(['init', '--data', data, '--http', '127.0.0.1:0'], { env })
  t.match(made, { peerId: PEER_ID, adminUser: 'admin', dataDir: data })
  t.notOk('adminPassword' in made, 'no password in the output when it was given')
  const before = await readFile(join(data, 'config.json'), 'utf8')

  const again = await dw(['init', '--data', data, '--name', 'other'], { env })
  t.not(again.code, 0)
  t.match(again.stderr, 'already holds a dw node')
  t.equal(await readFile(join(data, 'config.json'), 'utf8'), before, 'the existing node is untouched')
  // Without a password at hand, the same answer, not a question about the password.
  const noPassword = await dw(['init', '--data', data])
  t.not(noPassword.code, 0)
  t.match(noPassword.stderr, 'already holds a dw node')

  // A hand-edited config.json with a missing comma: the start says where.
  await writeFile(join(data, 'config.json'), before.replace('"version": 1,', '"version": 1'))
  const start = await dw(['start', '--data', data])
  t.not(start.code, 0)
  t.match(start.stderr, /config\.json is not valid JSON: .*line 3 column/)
})

void t.test('--generate-password prints a password once, and it meets the policy', async (t) => {
  const data = join(await tempDir(t), 'gamma')
  const made = await dwJson(['init', '--data', data, '--generate-password', '--http', '127.0.0.1:0'])
  t.type(made.adminPassword, 'string')
  t.ok(made.adminPassword.length >= 16)
})

void t.test('without a password and without a terminal, init says what to do and creates nothing', async (t) => {
  const data = join(await tempDir(t), 'delta')
  const run = await dw(['init', '--data', data])
  t.not(run.code, 0)
  t.match(run.stderr, 'DW_ADMIN_PASSWORD')
  await t.rejects(stat(data), { code: 'ENOENT' })
})

void t.test('a password the policy refuses leaves no half-made node behind', async (t) => {
  const data = join(await tempDir(t), 'epsilon')
  const run = await dw(['init', '--data', data], { env: { DW_ADMIN_PASSWORD: 'short' } })
  t.not(run.code, 0)
  t.match(run.stderr, 'at least 8 characters')
  await t.rejects(stat(data), { code: 'ENOENT' })
})

void t.test('bad --http and --listen values are usage errors', async (t) => {
  const dir = await tempDir(t)
  const env = { DW_ADMIN_PASSWORD: ADMIN_PASSWORD }
  const http = await dw(['init', '--data', join(dir, 'a'), '--http', 'localhost'], { env })
  t.not(http.code, 0)
  t.match(http.stderr, 'HOST:PORT')
  const listen = await dw(['init', '--data', join(dir, 'b'), '--listen', '/ip4/1.2.3.4/udp/1'], { env })
  t.not(listen.code, 0)
  t.match(listen.stderr, 'TCP multiaddr')
  t.same(await readdir(dir), [], 'nothing created')
})

void t.test('a wildcard listen address is printed with what other sites dial instead', async (t) => {
  const data = join(await tempDir(t), 'wild')
  const run = await dw(['init', '--data', data, '--listen', '/ip4/0.0.0.0/tcp/0'], { env: { DW_ADMIN_PASSWORD: ADMIN_PASSWORD } })
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /\/ip4\/0\.0\.0\.0\/tcp\/0\/p2p\//)
  t.match(run.stdout, /listen on every interface": other sites dial this host's own IP or DNS name/)
})
