import { execFile } from 'node:child_process'
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises'
import { get as httpGet } from 'node:http'
import { get as httpsGet } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { TEST_LOGIN } from '../helpers/node.ts'
import { NodeClient } from '../../src/cli/client.ts'
import { CONFIG_FILE, readConfig, writeConfig } from '../../src/config.ts'
import { initNode, startNode } from '../../src/node.ts'
import { ADMIN_PASSWORD, dw, dwJson, initialised, startedWith } from '../cli/helpers.ts'
import { tempDir } from '../helpers/tmp.ts'

const run = promisify(execFile)

interface Pair { cert: string, key: string }

/** A self-signed certificate (its own CA), or one issued by `ca`; no private key is ever committed. */
async function certificate (dir: string, name: string, san: string, ca?: Pair): Promise<Pair> {
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
  const subject = ['-subj', `/CN=${name}`, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', pair.key]
  if (ca === undefined) {
    await run('openssl', ['req', '-x509', ...subject, '-out', pair.cert, '-days', '2', '-addext', `subjectAltName=${san}`])
  } else {
    const csr = join(dir, `${name}.csr`)
    const ext = join(dir, `${name}.ext`)
    await writeFile(ext, `subjectAltName=${san}\n`)
    await run('openssl', ['req', '-new', ...subject, '-out', csr])
    await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', pair.cert, '-days', '2', '-extfile', ext])
  }
  await chmod(pair.key, 0o600)
  return pair
}

/** One GET, bounded; resolves with the status or rejects with the connection's error. */
async function getStatus (url: string, options: { ca?: string } = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = url.startsWith('https:') ? httpsGet(url, { ca: options.ca }) : httpGet(url)
    req.setTimeout(5000, () => req.destroy(new Error('timed out')))
    req.on('response', res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
  })
}

async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

const openssl = await run('openssl', ['version']).then(() => true, () => false)

void t.test('HTTPS from the CLI', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const certs = await tempDir(t, 'dw-tls-certs-')
  // Issued for a name, not for 127.0.0.1: the local CLI trusts it by the pin, not by the name.
  const selfSigned = await certificate(certs, 'north-station', 'DNS:north-station.example')
  const ca = await certificate(certs, 'field-ca', 'DNS:field-ca.example')
  const issued = await certificate(certs, 'south-station', 'DNS:south-station.example,IP:127.0.0.1', ca)

  t.test('a self-signed certificate: local commands pin it, everyone else must be told to trust it', async (t) => {
    const data = await initialised(t, 'north')
    const node = await startedWith(t, data, { args: ['--tls-cert', selfSigned.cert, '--tls-key', selfSigned.key] })
    const at = ['--data', data]
    t.match(node.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'serves https')
    const token = JSON.parse(await readFile(join(data, 'node-token.json'), 'utf8'))
    t.equal(token.url, node.url)
    t.equal(token.cert, await readFile(selfSigned.cert, 'utf8'), 'the node records the certificate it serves')

    const status = await dwJson(['status', ...at])
    t.match(status, { ok: true, name: 'north', url: node.url }, 'dw status works over TLS with the pinned certificate')
    t.same(await dwJson(['peer', 'pending', ...at]), [], 'so do admin commands')
    const signedIn = await dwJson(['status', '--user', 'admin', ...at], { env: { DW_PASSWORD: ADMIN_PASSWORD } })
    t.match(signedIn, { ok: true, url: node.url }, 'and a user signing in to the local node')

    const port = new URL(node.url).port
    await t.rejects(getStatus(`http://127.0.0.1:${port}/healthz`), 'plain HTTP gets no answer')
    await t.rejects(getStatus(`${node.url}/healthz`), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'a client that does not trust the certificate is refused')
    t.equal(await getStatus(`${node.url}/healthz`, { ca: await readFile(selfSigned.cert, 'utf8') }).catch((err: any) => err.code), 'ERR_TLS_CERT_ALTNAME_INVALID',
      'trusting the certificate does not waive the name check for anyone but the local CLI')

    const remote = ['status', '--user', 'admin', '--url', node.url, ...at]
    const refused = await dw(remote, { env: { DW_PASSWORD: ADMIN_PASSWORD } })
    t.equal(refused.code, 1, 'the CLI refuses a certificate it was not told to trust')
    t.match(refused.stderr, `refused the node at ${node.url}: its TLS certificate is not trusted`)
    t.match(refused.stderr, 'set DW_TLS_CA=FILE')
    const wrongName = await dw(remote, { env: { DW_PASSWORD: ADMIN_PASSWORD, DW_TLS_CA: selfSigned.cert } })
    t.equal(wrongName.code, 1, 'a trusted certificate for another name is refused too')
    t.match(wrongName.stderr, /not in the cert's list|altnames/)
    t.notMatch(node.stderr(), 'reachable from other hosts', 'loopback only: no warning')
  })

  t.test('a CA-issued certificate from DW_TLS_CERT/DW_TLS_KEY, listening on every interface', async (t) => {
    const data = await initialised(t, 'south')
    const node = await startedWith(t, data, { args: ['--http', '0.0.0.0:0'], env: { DW_TLS_CERT: issued.cert, DW_TLS_KEY: issued.key } })
    const port = new URL(node.url).port
    t.match(node.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'local commands dial loopback')
    t.not(port, '0')
    await until(() => node.stderr().includes('reachable'), 5000, 'the exposure warning')
    t.match(node.stderr(), `dw: warning: the HTTP API listens on 0.0.0.0:${port}, reachable from other hosts\n`, 'warns, with the real port')
    t.notMatch(node.stderr(), 'plain HTTP', 'no clear-text warning: it serves HTTPS')

    t.match(await dwJson(['status', '--data', data]), { ok: true, name: 'south' })
    const remote = ['status', '--user', 'admin', '--url', node.url, '--data', data]
    t.match(await dwJson(remote, { env: { DW_PASSWORD: ADMIN_PASSWORD, DW_TLS_CA: ca.cert } }), { ok: true, name: 'south' }, 'DW_TLS_CA trusts a private CA')
    const refused = await dw(remote, { env: { DW_PASSWORD: ADMIN_PASSWORD } })
    t.equal(refused.code, 1)
    t.match(refused.stderr, 'its TLS certificate is not trusted (unable to verify')
    const missing = await dw(remote, { env: { DW_PASSWORD: ADMIN_PASSWORD, DW_TLS_CA: join(certs, 'nope.crt') } })
    t.equal(missing.code, 1)
    t.match(missing.stderr, `cannot read the TLS CA file ${join(certs, 'nope.crt')} (DW_TLS_CA): ENOENT`)
  })

  t.test('plain HTTP on every interface warns that it is reachable and unencrypted', async (t) => {
    const data = await initialised(t, 'east')
    const node = await startedWith(t, data, { args: ['--http', '0.0.0.0:0'] })
    const port = new URL(node.url).port
    t.equal(node.url, `http://127.0.0.1:${port}`)
    await until(() => node.stderr().includes('reachable'), 5000, 'the exposure warning')
    t.match(node.stderr(), `the HTTP API listens on 0.0.0.0:${port}, reachable from other hosts; it is plain HTTP, so passwords and tokens cross the network unencrypted`)
  })

  t.test('dw start refuses half a TLS setting', async (t) => {
    const data = await initialised(t, 'west')
    const flags = await dw(['start', '--data', data, '--tls-cert', selfSigned.cert])
    t.equal(flags.code, 1)
    t.match(flags.stderr, 'HTTPS needs both --tls-cert and --tls-key')
    const env = await dw(['start', '--data', data], { env: { DW_TLS_KEY: selfSigned.key } })
    t.equal(env.code, 1)
    t.match(env.stderr, 'HTTPS needs both DW_TLS_CERT and DW_TLS_KEY')
  })
})

void t.test('config.json http.tls, and what the client module trusts', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const data = join(await tempDir(t, 'dw-tls-lib-'), 'data')
  await initNode({ dataDir: data, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const pair = await certificate(data, 'node', 'DNS:node.example')
  const other = await certificate(await tempDir(t, 'dw-tls-other-'), 'impostor', 'DNS:node.example,IP:127.0.0.1')

  const config = await readConfig(data)
  await writeConfig(data, { ...config, http: { ...config.http, tls: { cert: 'node.crt', key: 'node.key' } } })
  const node = await startNode({ dataDir: data, logger: false })
  t.teardown(node.stop)
  t.match(node.url, /^https:/, 'relative paths in config.json are read from the data directory')

  const client = await NodeClient.connect({ data })
  t.match(await client.request('GET', '/healthz'), { ok: true }, 'the client pins the certificate in node-token.json')

  // Someone able to rewrite node-token.json could point the CLI anywhere; here the pin no longer matches.
  const tokenFile = join(data, 'node-token.json')
  const token = JSON.parse(await readFile(tokenFile, 'utf8'))
  await writeFile(tokenFile, JSON.stringify({ ...token, cert: await readFile(other.cert, 'utf8') }))
  const mismatched = await NodeClient.connect({ data })
  await t.rejects(mismatched.request('GET', '/healthz'), { code: 'CONFIG_INVALID', message: /TLS certificate is not trusted/ }, 'a certificate other than the pinned one is refused')
  await writeFile(tokenFile, JSON.stringify({ ...token, cert: undefined }))
  const unpinned = await NodeClient.connect({ data })
  await t.rejects(unpinned.request('GET', '/healthz'), { code: 'CONFIG_INVALID' }, 'without a pin, the usual CA store does not know it')
  const trusting = await NodeClient.connect({ data, tlsCa: other.cert })
  await t.rejects(trusting.request('GET', '/healthz'), { code: 'CONFIG_INVALID' }, 'nor does a CA file with an unrelated certificate')
})

void t.test('a wrong certificate or key fails the start with the file named', { skip: openssl ? false : 'openssl is not installed' }, async (t) => {
  const data = join(await tempDir(t, 'dw-tls-bad-'), 'data')
  await initNode({ dataDir: data, adminPassword: ADMIN_PASSWORD, login: TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const a = await certificate(data, 'a', 'DNS:a.example')
  const b = await certificate(data, 'b', 'DNS:b.example')
  await copyFile(a.cert, join(data, 'not-a-key.pem'))

  await t.rejects(startNode({ dataDir: data, logger: false, tls: { cert: a.cert, key: b.key } }), { code: 'CONFIG_INVALID', message: `the TLS key ${b.key} does not belong to the certificate ${a.cert}` })
  await t.rejects(startNode({ dataDir: data, logger: false, tls: { cert: a.cert, key: join(data, 'missing.key') } }), { code: 'CONFIG_INVALID', message: `cannot read the TLS key ${join(data, 'missing.key')}: ENOENT` })
  await t.rejects(startNode({ dataDir: data, logger: false, tls: { cert: a.cert, key: 'not-a-key.pem' } }), { code: 'CONFIG_INVALID', message: /not-a-key\.pem is not an unencrypted PEM private key/ })
  await t.rejects(startNode({ dataDir: data, logger: false, tls: { cert: a.key, key: a.key } }), { code: 'CONFIG_INVALID', message: /a\.key is not a PEM certificate/ })

  const config = JSON.parse(await readFile(join(data, CONFIG_FILE), 'utf8'))
  await writeFile(join(data, CONFIG_FILE), JSON.stringify({ ...config, http: { ...config.http, tls: { cert: 'a.crt' } } }))
  await t.rejects(startNode({ dataDir: data, logger: false }), { code: 'CONFIG_INVALID', message: '"http.tls" must be {"cert": FILE, "key": FILE}' })
})
