import { chmod, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { IDENTITY_FILE, loadOrCreateIdentity, peerIdOf } from '../../src/peer/identity.ts'
import { tempDir } from '../helpers/tmp.ts'

void t.test('creates an Ed25519 identity once and loads the same one afterwards', async (t) => {
  const dir = join(await tempDir(t), 'nested', 'data')
  const first = await loadOrCreateIdentity(dir)
  t.equal(first.type, 'Ed25519')
  t.match(peerIdOf(first), /^12D3KooW/)

  const again = await loadOrCreateIdentity(dir)
  t.equal(peerIdOf(again), peerIdOf(first), 'same peer id after reload')
  t.ok(again.equals(first), 'same private key after reload')

  const info = await stat(join(dir, IDENTITY_FILE))
  t.equal(info.mode & 0o777, 0o600, 'key file is readable by its owner only')
  t.same(await readdir(dir), [IDENTITY_FILE], 'no temporary files left behind')
})

void t.test('a key file restored with loose permissions is tightened to 0600', async (t) => {
  const dir = await tempDir(t)
  const key = await loadOrCreateIdentity(dir)
  await chmod(join(dir, IDENTITY_FILE), 0o644)
  t.ok((await loadOrCreateIdentity(dir)).equals(key))
  t.equal((await stat(join(dir, IDENTITY_FILE))).mode & 0o777, 0o600)
})

void t.test('a different data directory gets a different identity', async (t) => {
  const a = await loadOrCreateIdentity(await tempDir(t))
  const b = await loadOrCreateIdentity(await tempDir(t))
  t.not(peerIdOf(a), peerIdOf(b))
})

void t.test('a damaged key file is reported, never silently replaced', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, IDENTITY_FILE), 'not a key')
  await t.rejects(loadOrCreateIdentity(dir), { code: 'CONFIG_INVALID' })
})
