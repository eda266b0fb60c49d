import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_PASSWORD, dw, dwJson, initialised, started } from './helpers.ts'

void t.test('start serves until SIGTERM, then stops cleanly and removes its token', async (t) => {
  const data = await initialised(t, 'stopper')
  const node = await started(t, data)
  const token = JSON.parse(await readFile(join(data, 'node-token.json'), 'utf8'))
  t.equal(token.url, node.url, 'the real URL (port 0 resolved) is in node-token.json')
  t.equal((await stat(join(data, 'node-token.json'))).mode & 0o777, 0o600)

  node.child.kill('SIGTERM')
  t.equal(await node.exited, 0, 'exit code 0 after SIGTERM')
  await t.rejects(stat(join(data, 'node-token.json')), { code: 'ENOENT' })
  const after = await dw(['status', '--data', data])
  t.not(after.code, 0)
  t.match(after.stderr, `the node at ${data} (peer id ${node.peerId}) is not running; start it with: dw start --data ${data}`, 'a stopped node is named by its peer id too')
})

void t.test('status and users against a running node', async (t) => {
  const data = await initialised(t, 'alpha')
  const node = await started(t, data)
  const at = ['--data', data]

  t.test('status --json', async (t) => {
    const status = await dwJson(['status', ...at])
    t.match(status, { ok: true, name: 'alpha', peerId: node.peerId, url: node.url })
    t.type(status.uptimeSeconds, 'number')
    const text = await dw(['status', ...at])
    t.equal(text.code, 0)
    t.match(text.stdout, /node:\s+alpha/)
    t.match(text.stdout, node.peerId)
    t.match(text.stdout, /uptime:\s+\d+s/)
  })

  t.test('a second start on the same directory is refused', async (t) => {
    const run = await dw(['start', ...at])
    t.not(run.code, 0)
    t.match(run.stderr, 'already running')
  })

  t.test('user add, ls, disable, enable, passwd', async (t) => {
    const added = await dwJson(['user', 'add', 'ana', '--role', 'member', '--email', 'ana@example.org', '--display-name', 'Ana', ...at],
      { env: { DW_USER_PASSWORD: 'ana-first-pass' } })
    t.match(added, { username: 'ana', role: 'member', email: 'ana@example.org', displayName: 'Ana', disabled: false })
    t.notOk(JSON.stringify(added).includes('ana-first-pass'), 'no password (or hash) comes back')

    const table = await dw(['user', 'ls', ...at])
    t.match(table.stdout, /^ID\s+USERNAME\s+ROLE\s+STATUS/)
    t.match(table.stdout, /ana\s+member\s+active/)
    t.match(table.stdout, /admin\s+admin\s+active/)

    const noPassword = await dw(['user', 'add', 'ben', ...at])
    t.not(noPassword.code, 0)
    t.match(noPassword.stderr, 'DW_USER_PASSWORD')

    const duplicate = await dw(['user', 'add', 'ana', ...at], { env: { DW_USER_PASSWORD: 'another-pass-1' } })
    t.not(duplicate.code, 0)
    t.match(duplicate.stderr, 'username ana is taken')

    const asAna = ['user', 'ls', '--user', 'ana', ...at]
    t.equal((await dw(asAna, { env: { DW_PASSWORD: 'ana-first-pass' } })).code, 0, 'ana signs in with her password')
    const wrong = await dw(asAna, { env: { DW_PASSWORD: 'not-her-password' } })
    t.not(wrong.code, 0)
    t.match(wrong.stderr, 'wrong username or password')

    t.equal((await dw(['user', 'disable', 'ana', ...at])).code, 0)
    const users = await dwJson(['user', 'ls', ...at])
    t.match(users.find((u: any) => u.username === 'ana'), { disabled: true })
    t.not((await dw(asAna, { env: { DW_PASSWORD: 'ana-first-pass' } })).code, 0, 'a disabled account cannot sign in')

    t.equal((await dw(['user', 'enable', added.id, ...at])).code, 0, 'by id as well as by name')
    const passwd = await dw(['user', 'passwd', 'ana', ...at], { env: { DW_USER_PASSWORD: 'ana-second-pass' } })
    t.equal(passwd.code, 0, passwd.stderr)
    t.not((await dw(asAna, { env: { DW_PASSWORD: 'ana-first-pass' } })).code, 0, 'the old password stops working')
    t.equal((await dw(asAna, { env: { DW_PASSWORD: 'ana-second-pass' } })).code, 0, 'the new one works')

    const selfService = await dw(['user', 'passwd', 'ana', '--user', 'ana', ...at], { env: { DW_PASSWORD: 'ana-second-pass', DW_USER_PASSWORD: 'ana-third-pass' } })
    t.equal(selfService.code, 0, `a member changes her own password: ${selfService.stderr}`)
    const forbidden = await dw(['user', 'disable', 'admin', '--user', 'ana', ...at], { env: { DW_PASSWORD: 'ana-third-pass' } })
    t.not(forbidden.code, 0, 'a member cannot disable the admin')
    t.match(forbidden.stderr, 'FORBIDDEN')

    const unknown = await dw(['user', 'disable', 'nobody', ...at])
    t.not(unknown.code, 0)
    t.match(unknown.stderr, 'no user named nobody')
  })

  t.test('the node token never goes to another URL', async (t) => {
    const run = await dw(['status', '--url', node.url, ...at])
    t.not(run.code, 0)
    t.match(run.stderr, '--url needs --user')
    const remote = await dw(['status', '--url', node.url, '--user', 'admin', '--data', '/nonexistent'], { env: { DW_PASSWORD: ADMIN_PASSWORD } })
    t.equal(remote.code, 0, remote.stderr)
    t.match(remote.stdout, node.peerId)
  })
})
