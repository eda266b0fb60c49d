import t from 'tap'
import http from 'node:http'
import { ADMIN_PASSWORD, startTestNode } from '../helpers/node.ts'

// Issue 12: 40 unauthenticated logins in flight made a real login take 24 s.
const FLOOD = 1000
const ANSWER_WITHIN_MS = 30_000

interface Answer { status: number, retryAfter: string | undefined, body: string }

/** One request over real HTTP from `localAddress` (any 127/8 address reaches a node on 127.0.0.1). */
async function request (url: URL, localAddress: string, agent: http.Agent | false, method: string, path: string, json?: unknown): Promise<Answer> {
  const payload = json === undefined ? '' : JSON.stringify(json)
  const headers = json === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, agent, localAddress, timeout: ANSWER_WITHIN_MS, headers }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }) })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${path}: no answer within ${ANSWER_WITHIN_MS} ms`)) })
    req.on('error', reject)
    req.end(payload)
  })
}

t.test('1,000 bad logins in flight from one address: a login from another address is answered, the flood is refused without hashing', async t => {
  const T0 = Date.now()
  // The default password cost: what is tested is that the flood waits for
  // no password check; with the suite's cheap hashes, checks would finish
  // while the flood is still arriving and more of it would be checked.
  const n = await startTestNode(t, { login: {} })
  t.comment('started', Date.now() - T0)
  const url = new URL(n.node.url)
  t.equal(url.hostname, '127.0.0.1', 'the node listens on 127.0.0.1, so 127.0.0.2 reaches it as another client')

  // The flood's 1,000 connections are opened first (200 at a time), so
  // what is tested is the login path and not the kernel's accept queue
  // (511 deep), which a burst of connections fills whatever the node does.
  const flooder = new http.Agent({ keepAlive: true, maxSockets: FLOOD, maxFreeSockets: FLOOD })
  t.teardown(() => { flooder.destroy() })
  for (let opened = 0; opened < FLOOD; opened += 200) {
    await Promise.all(Array.from({ length: 200 }, async () => await request(url, '127.0.0.1', flooder, 'GET', '/healthz')))
  }

  t.comment('warm', Date.now() - T0)
  // Each guess is for a fresh unknown username, so no per-name lock helps:
  // only the per-address limit stands between the flood and the scrypt queue.
  const flood = Array.from({ length: FLOOD }, async (_, i) => await request(url, '127.0.0.1', flooder, 'POST', '/auth/login', { username: `intruder-${i}`, password: 'a guess' }))
  const real = await request(url, '127.0.0.2', false, 'POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD })
  t.comment('real', Date.now() - T0)
  const answers = await Promise.all(flood)
  t.comment('flood', Date.now() - T0)

  t.equal(real.status, 200, `admin signed in from 127.0.0.2 (${real.body.slice(0, 120)})`)
  t.type(JSON.parse(real.body).token, 'string')
  const checked = answers.filter(a => a.status === 401).length
  const refused = answers.filter(a => a.status === 429)
  // Before, all 1,000 queued first-come for two scrypt slots, ahead of the real login.
  t.ok(checked <= 10, `${checked} of the flood's passwords were checked at all (a handful at most)`)
  t.equal(refused.length + checked, FLOOD, 'every other flood request was refused with 429, before any hashing')
  t.ok(refused.every(a => Number(a.retryAfter) > 0), 'every 429 says when to retry')
})
