// HTTP fuzzing (issue 5, item 5). Every route of GET /openapi.json gets
// invalid requests: wrong-shaped, oversized, deeply nested, mistyped,
// non-UTF-8 or empty bodies, wrong content types, hostile path parameters
// and query strings, garbage headers, and tokens that are missing, garbage,
// expired, or another user's. The node must never answer 5xx, every error
// must be JSON with error.code and error.message, and nothing may change:
// only requests that are invalid by construction are sent (see `violation`),
// so the feed sequence, blobs, peers, pins and sessions must stay as they were.
// A second test sends valid requests with hostile values (huge numbers,
// unicode, deep nesting): no 5xx, and what is stored reads back.
//
// Reproduce: FUZZ_SEED=<seed printed below> tap test/fuzz/http.test.ts
// FUZZ_MS sets how long each phase runs; FUZZ_STRICT=1 fails on known bugs.
import t from 'tap'
import { startTestNode, addMember, ADMIN_PASSWORD, type TestNode } from '../helpers/node.ts'
import { nodeDocKey } from '../../src/trust/roster.ts'
import { CaseLog, Rng, fuzzMs, fuzzSeed, randomJson } from './rng.ts'
import { reportFindings, type Finding } from './findings.ts'

const SEED = fuzzSeed()
const RUN_MS = fuzzMs(20_000)
const STRICT = process.env.FUZZ_STRICT === '1'
t.comment(`FUZZ_SEED=${SEED} FUZZ_MS=${RUN_MS}`)

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

type Schema = Record<string, any>
interface Route {
  method: string
  /** OpenAPI template, e.g. /datasets/{id} */
  path: string
  params: string[]
  query: Record<string, Schema>
  body?: Schema
  multipart: boolean
  public: boolean
  adminOnly: boolean
}

/** Routes only an admin may call (members get 403): from the route definitions in src/api/routes. */
const ADMIN_ONLY = [
  /^POST \/users$/, /^DELETE \/users\//, /^GET \/users\/conflicts$/, /^(GET|POST|PATCH|DELETE) \/peers/, /^POST \/sync\/now$/,
  /^GET \/audit$/, /^(GET|POST|DELETE) \/pins/, /^POST \/blobs\/gc$/
]
const PUBLIC = [/^GET \/healthz$/, /^POST \/auth\/login$/, /^GET \/openapi\.json$/]

function routesOf (doc: any): Route[] {
  const out: Route[] = [{ method: 'GET', path: '/openapi.json', params: [], query: {}, multipart: false, public: true, adminOnly: false }]
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      const M = method.toUpperCase()
      const params = (op.parameters ?? []).filter((p: any) => p.in === 'path').map((p: any) => p.name as string)
      const query = Object.fromEntries((op.parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => [p.name, p.schema]))
      const key = `${M} ${path}`
      out.push({
        method: M,
        path,
        params,
        query,
        body: op.requestBody?.content?.['application/json']?.schema,
        multipart: path.endsWith('/versions') && M === 'POST',
        public: PUBLIC.some(re => re.test(key)),
        adminOnly: ADMIN_ONLY.some(re => re.test(key))
      })
    }
  }
  return out
}

/** A value the schema accepts (best effort: used as the "near-valid" base that a violation then breaks). */
function validValue (rng: Rng, s: Schema | undefined, ids: () => string, depth = 0): unknown {
  if (s === undefined) return rng.string(10)
  if (Array.isArray(s.enum)) return rng.pick(s.enum)
  const type = Array.isArray(s.type) ? s.type.find((x: string) => x !== 'null') : s.type
  switch (type) {
    case 'string': {
      if (s.format === 'uuid') return ids()
      if (s.pattern === '^[0-9a-f]{64}$') return rng.hex(64)
      const len = rng.range(Math.max(1, s.minLength ?? 0), Math.min(s.maxLength ?? 20, 20))
      return Array.from({ length: len }, () => 'abcdefghij'[rng.int(10)]).join('')
    }
    case 'integer': return rng.range(s.minimum ?? 0, Math.min(s.maximum ?? 1000, 1000))
    case 'number': return rng.float() * 100
    case 'boolean': return rng.bool()
    case 'array': return depth > 3 ? [] : [...new Set(Array.from({ length: rng.int(Math.min(s.maxItems ?? 3, 3) + 1) }, () => validValue(rng, s.items, ids, depth + 1)))]
    case 'object':
    default: {
      const out: Record<string, unknown> = {}
      const props = s.properties ?? {}
      for (const [k, v] of Object.entries<Schema>(props)) {
        if ((s.required ?? []).includes(k) || rng.bool(0.4)) out[k] = validValue(rng, v, ids, depth + 1)
      }
      if (Object.keys(out).length === 0 && Object.keys(props).length > 0) {
        const k = rng.pick(Object.keys(props))
        out[k] = validValue(rng, props[k], ids, depth + 1)
      }
      if (s.additionalProperties !== false && s.additionalProperties !== undefined && Object.keys(props).length === 0) out[rng.string(8) || 'k'] = 1
      return out
    }
  }
}

/** A JSON value whose type the schema does not allow (undefined when the schema allows any type). */
function wrongType (rng: Rng, s: Schema): unknown {
  const types: string[] = Array.isArray(s.type) ? s.type : s.type !== undefined ? [s.type] : []
  if (types.length === 0) return undefined
  if (s.nullable === true) types.push('null')
  const candidates: unknown[] = [
    ...(types.includes('string') ? [] : [rng.string(20) || 'x', '']),
    ...(types.includes('number') || types.includes('integer') ? (types.includes('integer') && !types.includes('number') ? [1.5, -0.25] : []) : [42, -1, 1e300]),
    ...(types.includes('boolean') ? [] : [true, false]),
    ...(types.includes('null') ? [] : [null]),
    ...(types.includes('array') ? [] : [[], [1, 'a']]),
    ...(types.includes('object') ? [] : [{}, { a: 1 }])
  ]
  return candidates.length === 0 ? undefined : rng.pick(candidates)
}

/** Nested arrays `depth` deep: one kilobyte per ~500 levels. */
const deepArray = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
const deepObject = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)

interface Request {
  method: string
  url: string
  headers: Record<string, string>
  payload?: string | Buffer
  /** Why the request cannot succeed (for the report; every mutating request has one). */
  violation: string
  auth: string
}

interface Ctx {
  admin: string
  member: string
  memberId: string
  /** A token that was valid and has been logged out. */
  expired: string
  ids: Record<string, string>
  fileName: string
}

function authHeader (rng: Rng, mode: string, ctx: Ctx): string | undefined {
  switch (mode) {
    case 'none': return undefined
    case 'garbage': return rng.pick([
      '', 'Bearer', 'Bearer ', 'bearer ' + 'a'.repeat(43), 'Basic YWRtaW46YWRtaW4=', `Bearer ${rng.string(60)}`, `Bearer ${'x'.repeat(129)}`,
      `Bearer ${'A'.repeat(rng.range(1, 15))}`, `Token ${ctx.admin}`, `Bearer  ${ctx.admin}`, `Bearer ${ctx.admin} extra`, `${ctx.admin}`,
      `Bearer ${ctx.admin.slice(0, -1)}%`, 'Bearer ' + 'é'.repeat(20), `Bearer ${'z'.repeat(100_000)}`, `Bearer ${ctx.admin}\u0000`
    ])
    case 'unknown': return `Bearer ${Buffer.from(rng.bytes(32)).toString('base64url')}`
    case 'expired': return `Bearer ${ctx.expired}`
    case 'member': return `Bearer ${ctx.member}`
    default: return `Bearer ${ctx.admin}`
  }
}

function randomSegment (rng: Rng): string {
  const s = rng.weighted<() => string>([
    [3, () => rng.string(40)],
    [2, () => rng.pick(['..', '../..', '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f%2e%2e%2f', '....//', '%00', '%', '%zz', '%C0%AF', '\u0000', 'null', 'undefined', '[object Object]', '-1', '0', '{id}'])],
    [1, () => 'a'.repeat(rng.pick([129, 1025, 10_000, 60_000]))],
    [1, () => rng.uuid().toUpperCase()],
    [1, () => rng.uuid().slice(0, 35)],
    [1, () => rng.uuid() + 'x'],
    [1, () => '💥'.repeat(rng.range(1, 50))],
    [1, () => enc(rng.string(30))]
  ])()
  return s === '' ? '%20' : s
}

/** Build a request for `route` that cannot succeed, and say why. */
function invalidRequest (rng: Rng, route: Route, ctx: Ctx): Request {
  const authMode = route.public ? 'none' : rng.weighted<string>([[12, 'none'], [12, 'garbage'], [8, 'unknown'], [8, 'expired'], [25, 'member'], [35, 'admin']])
  const headers: Record<string, string> = {}
  const auth = authHeader(rng, authMode, ctx)
  if (auth !== undefined) headers.authorization = auth
  const authenticated = authMode === 'member' || authMode === 'admin'
  const reasons: string[] = []
  if (!route.public && !authenticated) reasons.push(`auth:${authMode}`)
  if (route.adminOnly && authMode === 'member') reasons.push('member on an admin route')

  // Path parameters: existing ids, random ids, or garbage.
  const params: Record<string, string> = {}
  let badParam = false
  let missingTarget = false
  for (const p of route.params) {
    const pick = rng.int(10)
    if (p === 'peerId') {
      if (pick < 5) { params[p] = enc(randomSegment(rng)); badParam = params[p].length > 128 } else params[p] = '12D3KooW' + rng.hex(44)
      missingTarget = true // no such peer is in the book
      continue
    }
    if (p === 'name') { params[p] = pick < 5 ? ctx.fileName : enc(randomSegment(rng)); continue }
    if (pick < 4) {
      const s = randomSegment(rng)
      params[p] = rng.bool(0.8) ? enc(s) : s
      if (!UUID.test(decodeURIComponentSafe(params[p]))) badParam = true
    } else if (pick < 7) {
      params[p] = rng.uuid()
      missingTarget = true
    } else {
      params[p] = p === 'versionId' ? ctx.ids.version as string : route.path.startsWith('/users') ? ctx.memberId : ctx.ids[route.path.split('/')[1] as string] ?? rng.uuid()
    }
  }
  if (badParam) reasons.push('bad path parameter')
  else if (missingTarget && route.method !== 'GET' && route.method !== 'POST') reasons.push('no such target')
  let path = route.path.replace(/\{(\w+)\}/g, (_, p: string) => params[p] ?? 'x')
  // Now and then the path itself is broken.
  if (rng.bool(0.03)) { path += rng.pick(['//', '/..', '/%2e%2e', '/extra']); reasons.push('path damaged') }

  // Query string: documented parameters with good or bad values, unknown ones, repeats.
  const q: string[] = []
  if (rng.bool(0.5)) {
    for (let i = rng.int(4); i > 0; i--) {
      const names = Object.keys(route.query)
      if (names.length > 0 && rng.bool(0.6)) {
        const name = rng.pick(names)
        const schema = route.query[name] as Schema
        const value = rng.bool(0.5) ? wrongType(rng, schema) ?? randomSegment(rng) : validValue(rng, schema, () => rng.uuid())
        q.push(`${name}=${enc(typeof value === 'string' ? value : JSON.stringify(value))}`)
      } else {
        q.push(`${enc(rng.pick(['zz', 'limit[]', '__proto__', 'constructor', 'a'.repeat(1000), rng.string(10)]))}=${enc(rng.string(50))}`)
        if (Object.keys(route.query).length > 0) reasons.push('unknown query parameter')
      }
    }
  }
  const url = q.length > 0 ? `${path}?${q.join('&')}` : path

  // Body.
  let payload: string | Buffer | undefined
  const hasBody = route.method !== 'GET'
  if (hasBody) {
    const schema = route.body
    const canUnknown = schema?.additionalProperties === false
    // A mutating request with valid auth and a valid target must carry a body violation.
    const needViolation = reasons.length === 0
    const options: Array<[number, string]> = [
      [4, 'malformed-json'], [3, 'empty-json'], [2, 'too-large'], [2, 'unsupported-type'],
      ...(schema !== undefined ? [[3, 'not-object'], [2, 'deep-nesting'], [2, 'invalid-utf8']] as Array<[number, string]> : []),
      ...(canUnknown ? [[8, 'unknown-field'], [6, 'wrong-type']] as Array<[number, string]> : []),
      ...(route.multipart ? [[6, 'bad-multipart']] as Array<[number, string]> : []),
      ...(!needViolation ? [[10, 'random-json'], [3, 'none']] as Array<[number, string]> : [])
    ]
    const kind = rng.weighted(options)
    const near = (): Record<string, unknown> => {
      const v = validValue(rng, schema, () => rng.pick([ctx.ids.dataset as string, rng.uuid()]))
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {}
    }
    const json = (v: unknown): void => { headers['content-type'] = 'application/json'; payload = JSON.stringify(v) }
    switch (kind) {
      case 'malformed-json':
        headers['content-type'] = rng.pick(['application/json', 'application/json; charset=utf-8', 'Application/JSON'])
        payload = rng.pick(['{', '{"a":', '[1,', '{"name": "x",}', "{'name': 'x'}", 'nul', 'NaN', '{"a":1}{"b":2}', '\u0000', '{"name":"x"} trailing', JSON.stringify(near()).slice(0, -1)])
        reasons.push('malformed JSON')
        break
      case 'empty-json':
        headers['content-type'] = 'application/json'
        payload = ''
        reasons.push('empty JSON body')
        break
      case 'too-large':
        json({ ...near(), [rng.pick(['description', 'name', 'zz', 'metadata'])]: 'x'.repeat(1024 * 1024 + rng.int(1000)) })
        reasons.push('body over the 1 MiB limit')
        break
      case 'unsupported-type':
        headers['content-type'] = rng.pick(['application/xml', 'application/x-www-form-urlencoded', 'image/png', 'application/octet-stream', 'text/html', 'application/json-patch+json', 'foo/bar; x=y'])
        payload = rng.bool() ? JSON.stringify(near()) : Buffer.from(rng.bytes(rng.size(2000)))
        reasons.push('unsupported content type')
        break
      case 'not-object': {
        const v = rng.pick<unknown>([[], [near()], 42, 'str', true, ...(schema?.nullable === true ? [] : [null])])
        json(v)
        if (schema?.nullable === true && v === null) break
        reasons.push('body is not an object')
        break
      }
      case 'deep-nesting':
        headers['content-type'] = 'application/json'
        payload = rng.bool() ? deepArray(rng.pick([1000, 10_000, 100_000])) : `{"zz_deep":${deepObject(rng.pick([1000, 10_000, 50_000]))}}`
        reasons.push('deeply nested, wrong shape')
        break
      case 'invalid-utf8': {
        // Bytes that are not UTF-8 inside a string, plus a field the schema refuses.
        headers['content-type'] = 'application/json'
        const body = Buffer.from(JSON.stringify({ ...near(), zz_fuzz: 'XX' }))
        const at = body.indexOf('XX')
        body[at] = rng.pick([0xff, 0xc0, 0xed, 0x80]); body[at + 1] = rng.pick([0xfe, 0xaf, 0xa0, 0x00])
        payload = body
        reasons.push(canUnknown ? 'invalid UTF-8 and an unknown field' : 'invalid UTF-8')
        break
      }
      case 'unknown-field': {
        const body: Record<string, unknown> = { ...near() }
        body[rng.pick(['zz_fuzz', 'Name', 'name ', 'password_hash', 'passwordHash', 'id', 'createdAt', 'deleted', 'kind', 'versions', 'role ', '__proto__x', rng.string(12) || 'zz'].filter(k => !(k in (schema?.properties ?? {}))))] = randomJson(rng, 3)
        json(body)
        reasons.push('unknown field')
        break
      }
      case 'wrong-type': {
        const props = Object.entries<Schema>(schema?.properties ?? {})
        const body = near()
        const candidates = props.map(([k, s]) => [k, wrongType(rng, s)] as const).filter(([, v]) => v !== undefined)
        if (candidates.length === 0) { body.zz_fuzz = 1; reasons.push('unknown field') } else {
          const [k, v] = rng.pick(candidates)
          body[k] = v
          reasons.push(`wrong type for ${k}`)
        }
        json(body)
        break
      }
      case 'bad-multipart': {
        const boundary = `----fuzz${rng.hex(12)}`
        headers['content-type'] = rng.bool(0.8) ? `multipart/form-data; boundary=${boundary}` : rng.pick(['multipart/form-data', `multipart/form-data; boundary=`, `multipart/mixed; boundary=${boundary}`])
        const part = (disposition: string, body: string): string => `--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n${body}\r\n`
        // Always broken before any file is stored: a bad first part, or no file at all.
        const first = rng.pick([
          part(`form-data; name="zz_unknown"`, 'x'),
          part(`form-data; name="file"; filename="${rng.pick(['../evil', '..', '.', 'a/b', 'a\\\\b', '', 'x\u0001y', 'n'.repeat(300)])}"`, 'data'),
          part(`form-data; name="note"`, 'n'.repeat(10_001)),
          part('form-data; name="note"', 'only a note'),
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\ntruncated, no closing boundary`,
          'not multipart at all'
        ])
        payload = first + (rng.bool() ? `--${boundary}--\r\n` : '')
        reasons.push('broken multipart (fails before any file part is stored)')
        break
      }
      case 'random-json':
        json(randomJson(rng))
        break
      default:
        break
    }
  }

  // Headers nobody should send.
  if (rng.bool(0.15)) {
    const [name, value] = rng.pick<[string, string]>([
      ['x-fuzz', 'v'.repeat(rng.pick([100, 8000, 60_000]))], ['accept', rng.string(40) || '*/*'], ['accept-encoding', 'gzip;q=2, br, zzz'],
      ['content-encoding', rng.pick(['gzip', 'br', 'deflate', 'zz'])], ['x-forwarded-for', '1.2.3.4, ' + rng.string(30)], ['cookie', 'a=' + rng.string(200)],
      ['transfer-encoding', 'chunked'], ['expect', '100-continue'], ['host', rng.string(30) || 'x'], ['origin', 'http://evil.example']
    ])
    if (!/[^\t\x20-\x7e\x80-\xff]/.test(value)) headers[name] = value
    if (name === 'content-encoding' && payload !== undefined) reasons.push('unsupported content encoding')
  }
  return { method: route.method, url, headers, payload, violation: reasons.join(', '), auth: authMode }
}

/** encodeURIComponent, with lone surrogates replaced (it throws on them). */
function enc (s: string): string {
  try { return encodeURIComponent(s) } catch { return encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd')) }
}

function decodeURIComponentSafe (s: string): string {
  try { return decodeURIComponent(s) } catch { return s }
}


/**
 * Known, unfixed bugs (see test/fuzz/bugs.test.ts), reported as todo unless
 * FUZZ_STRICT=1. BUG-7, BUG-8 and BUG-9 were found here and are fixed, so any
 * such finding now fails the test.
 */
const KNOWN: Array<[RegExp, string]> = []

/**
 * What a request could change. The feed counts as its entries since
 * `since`, leaving out this node's own document: the node republishes
 * which files it holds in the background (a second after the fixture's
 * upload), whatever the requests do.
 */
async function snapshot (n: TestNode, since: number): Promise<Record<string, unknown>> {
  const blobs: string[] = []
  for await (const b of n.node.blobs.list()) blobs.push(`${b.sha256}:${b.size}`)
  const own = nodeDocKey(n.node.peerId)
  return {
    changed: (await n.node.docs.feedSince(since, 1000)).map(e => e.key).filter(key => key !== own),
    blobs: blobs.sort(),
    peers: n.node.book.list().map(p => `${p.peerId} ${p.addrs.join(',')} ${p.name ?? ''}`).sort(),
    pending: n.node.book.pending().length,
    pins: n.node.pins.list().map(p => `${p.target}:${p.value}`).sort()
  }
}

function checkResponse (res: { statusCode: number, headers: Record<string, unknown>, body: string }, route: Route): string | undefined {
  if (res.statusCode >= 500 && !(res.statusCode === 503 && route.path.includes('/files/'))) return `status ${res.statusCode}: ${res.body.slice(0, 300)}`
  if (res.statusCode < 400) return undefined
  if (!String(res.headers['content-type'] ?? '').startsWith('application/json')) return `error ${res.statusCode} with content-type ${String(res.headers['content-type'])}: ${res.body.slice(0, 200)}`
  let body: any
  try { body = JSON.parse(res.body) } catch { return `error ${res.statusCode} body is not JSON: ${res.body.slice(0, 200)}` }
  if (typeof body?.error?.code !== 'string' || typeof body?.error?.message !== 'string' || body.error.message === '') return `error ${res.statusCode} without error.code/error.message: ${res.body.slice(0, 200)}`
  return undefined
}

async function fixtures (n: TestNode, rng: Rng): Promise<Ctx> {
  const ds = (await n.node.api.inject({ method: 'POST', url: '/datasets', headers: n.admin, payload: { name: 'fixture', tags: ['a'], metadata: { k: 'v' } } })).json()
  const model = (await n.node.api.inject({ method: 'POST', url: '/models', headers: n.admin, payload: { name: 'fixture model', metrics: { acc: 0.5 } } })).json()
  const report = (await n.node.api.inject({ method: 'POST', url: '/reports', headers: n.admin, payload: { reportKind: 'bias', title: 'r', subject: { kind: 'dataset', id: ds.id }, body: {} } })).json()
  const form = new FormData()
  form.append('file', new Blob([rng.bytes(5000)]), 'data.csv')
  const version = await (await fetch(`${n.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: n.admin, body: form })).json() as { id: string }
  await n.node.api.inject({ method: 'POST', url: '/pins', headers: n.admin, payload: { target: 'tag', value: 'a' } })
  await n.node.api.inject({ method: 'POST', url: '/peers', headers: n.admin, payload: { multiaddr: '/ip4/127.0.0.1/tcp/9/p2p/12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDktjYFKKYCcPJbW8Cv', name: 'far away' } })
  const member = await addMember(n, 'fuzz-member')
  const gone = await addMember(n, 'fuzz-gone')
  await n.node.api.inject({ method: 'POST', url: '/auth/logout', headers: gone.headers })
  return {
    admin: n.admin.authorization.slice(7),
    member: member.headers.authorization.slice(7),
    memberId: member.id,
    expired: gone.headers.authorization.slice(7),
    ids: { datasets: ds.id, models: model.id, reports: report.id, users: member.id, pins: rng.uuid(), version: version.id, dataset: ds.id },
    fileName: 'data.csv'
  }
}

t.test('http fuzz: invalid requests to every route: never 5xx, always a JSON error, never a change', async t => {
  const rng = new Rng(SEED)
  const n = await startTestNode(t)
  const findings: Finding[] = []
  const find = (kind: string, detail: string): void => { if (findings.length < 500) findings.push({ kind, detail }) }
  let lastLogged = ''
  const logger = n.node.api.log as unknown as { error: (obj: any, msg?: string) => void }
  logger.error = (obj: any, msg?: string) => { lastLogged = `${msg ?? ''} ${String(obj?.err?.stack ?? obj?.err ?? '').split('\n').slice(0, 4).join(' | ')}` }

  const ctx = await fixtures(n, rng)
  const doc = (await n.node.api.inject({ url: '/openapi.json' })).json()
  const routes = routesOf(doc)
  t.ok(routes.length >= 40, `${routes.length} routes from /openapi.json`)
  const since = n.node.docs.seq
  const before = await snapshot(n, since)
  const log = new CaseLog()
  const perRoute = new Map<string, Map<number, number>>()
  // Run for RUN_MS, and on past it (within a hard bound) until enough
  // requests went out: a loaded machine gets the same coverage, only slower.
  const deadline = Date.now() + RUN_MS
  const hardDeadline = Date.now() + RUN_MS * 10
  let sent = 0
  let slowest = 0

  const worker = async (): Promise<void> => {
    const wr = rng.fork()
    while (Date.now() < deadline || (sent < 2000 && Date.now() < hardDeadline)) {
      const r = wr.fork()
      const route = r.pick(routes)
      const req = invalidRequest(r, route, ctx)
      const key = `${route.method} ${route.path}`
      log.add(key, r.seed)
      const started = Date.now()
      let res
      try {
        res = await Promise.race([
          n.node.api.inject({ method: req.method as any, url: req.url, headers: req.headers, payload: req.payload }),
          new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('no answer within 10 s')) }, 10_000).unref())
        ])
      } catch (err) {
        if ((err as Error).message.startsWith('no answer')) find('hang', `${req.method} ${req.url.slice(0, 200)} (${req.violation}) seed ${r.seed}`)
        continue // light-my-request refused to build the request (e.g. an invalid header): nothing reached the node
      }
      sent++
      slowest = Math.max(slowest, Date.now() - started)
      const counts = perRoute.get(key) ?? new Map<number, number>()
      counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1)
      perRoute.set(key, counts)
      const problem = checkResponse(res, route)
      const where = `${req.method} ${req.url.slice(0, 160)} [auth ${req.auth}; ${req.violation || 'no violation'}; seed ${r.seed}]`
      if (problem !== undefined) find('bad-response', `${problem} <- ${where}${res.statusCode >= 500 ? ` (node log: ${lastLogged})` : ''}`)
      if (req.method !== 'GET' && res.statusCode < 400) find('invalid-request-accepted', `${res.statusCode} ${res.body.slice(0, 150)} <- ${where}`)
      if (req.method !== 'GET' && req.violation === '') find('generator', `mutating request without a violation: ${where}`)
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))

  const after = await snapshot(n, since)
  t.comment(`requests: ${sent} over ${perRoute.size} routes; slowest answer ${slowest} ms`)
  t.comment(`statuses per route: ${[...perRoute].sort().map(([k, v]) => `${k} ${[...v].sort().map(([s, c]) => `${s}x${c}`).join(',')}`).join('; ')}`)
  t.ok(sent >= 2000, `sent ${sent} requests (at least 2000)`)
  t.equal(perRoute.size, routes.length, 'every route was exercised')
  t.same(after, before, 'nothing changed: the feed (but for this node\'s holdings), blobs, peers, pending peers, pins')
  t.equal((await n.node.api.inject({ url: '/healthz' })).statusCode, 200, 'node is up')
  t.equal((await n.node.api.inject({ url: '/users', headers: n.admin })).statusCode, 200, 'the admin token still works')
  t.equal((await n.node.api.inject({ url: `/users/${ctx.memberId}`, headers: { authorization: `Bearer ${ctx.member}` } })).statusCode, 200, 'the member token still works')
  t.equal((await n.node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password: ADMIN_PASSWORD } })).statusCode, 200, 'the admin can log in')

  reportFindings(t, findings, KNOWN, STRICT)
  if (process.env.FUZZ_VERBOSE === '1') for (const f of findings) t.comment(`${f.kind}: ${f.detail.slice(0, 600)}`)
  if (findings.length > 0) t.comment(`FUZZ_SEED=${SEED}; last cases: ${log.recent()}`)
})

/** Values that are valid for the schemas yet hard for what stores them. */
function hostileValue (rng: Rng, depth = 0): unknown {
  return rng.weighted<() => unknown>([
    [3, () => rng.pick([2 ** 53 - 1, 2 ** 53, -(2 ** 53) - 2, 2 ** 63, 1e300, Number.MAX_VALUE, Number.MIN_VALUE, -0, 0.1 + 0.2, 123456789.123, rng.range(-1000, 1000)])],
    [3, () => rng.string(200)],
    [1, () => '\ud800' + rng.string(5) + '\udfff\udc00'],
    [1, () => rng.pick(['', ' ', '\u0000', '\u202e', 'null', '__proto__', 'constructor'])],
    [1, () => rng.bool()],
    [1, () => null],
    [2, () => depth > 3 ? [] : Array.from({ length: rng.int(5) }, () => hostileValue(rng, depth + 1))],
    [2, () => depth > 3 ? {} : Object.fromEntries(Array.from({ length: rng.int(5) }, () => [rng.pick([rng.string(10) || 'k', '__proto__', 'constructor', '', '.', 'a.b', '$ref', '💥']), hostileValue(rng, depth + 1)]))],
    [1, () => JSON.parse(deepObject(rng.pick([100, 1000, 5000])))]
  ])()
}

t.test('http fuzz: valid requests with hostile values: never 5xx, and what is stored reads back', async t => {
  const rng = new Rng(SEED ^ 0x7777)
  const n = await startTestNode(t)
  const findings: Finding[] = []
  const find = (kind: string, detail: string): void => { if (findings.length < 500) findings.push({ kind, detail }) }
  let lastLogged = ''
  const logger = n.node.api.log as unknown as { error: (obj: any, msg?: string) => void }
  logger.error = (obj: any, msg?: string) => { lastLogged = `${msg ?? ''} ${String(obj?.err?.stack ?? obj?.err ?? '').split('\n').slice(0, 4).join(' | ')}` }
  const ctx = await fixtures(n, rng)
  const member = { authorization: `Bearer ${ctx.member}` }
  const deadline = Date.now() + Math.min(RUN_MS / 2, 15_000)
  const hardDeadline = Date.now() + RUN_MS * 10
  const made: Array<{ url: string, sent: unknown }> = []
  let sent = 0
  const map = (): Record<string, unknown> => Object.fromEntries(Array.from({ length: rng.range(1, 6) }, () => [rng.pick([rng.string(20) || 'k', 'nested', 'n', '__proto__', 'constructor', '$x', 'a.b']), hostileValue(rng)]))
  const text = (max: number): string => rng.pick([rng.string(max), 'x'.repeat(max), '💥'.repeat(Math.floor(max / 2)), ' padded ', 'ok'])
  while (Date.now() < deadline || (sent < 100 && Date.now() < hardDeadline)) {
    const headers = rng.bool() ? n.admin : member
    const which = rng.int(6)
    let method: 'POST' | 'PATCH' = 'POST'
    let url = '/datasets'
    let payload: Record<string, unknown>
    if (which === 0) payload = { name: text(200) || 'n', description: text(2000), tags: [...new Set(Array.from({ length: rng.int(5) }, () => rng.pick(['a', 'é', '💥', 'x'.repeat(64), 'tag with space', 'a\u202eb'])))], metadata: map() }
    else if (which === 1) { url = '/models'; payload = { name: 'm', framework: text(100), metrics: Object.fromEntries(Array.from({ length: rng.range(1, 4) }, () => [rng.string(10) || 'm', rng.pick([0.5, 1e300, 2 ** 53, -(2 ** 60), Number.MAX_VALUE, 5e-324, -0])])) } } else if (which === 2) { url = '/reports'; payload = { reportKind: rng.pick(['bias', 'xai', 'transformation']), title: text(200) || 't', subject: { kind: 'dataset', id: ctx.ids.dataset }, body: map() } } else if (which === 3) { method = 'PATCH'; url = `/users/${ctx.memberId}`; payload = { displayName: text(200), preferences: map() } } else if (which === 4) { url = `/models/${ctx.ids.models as string}/training`; payload = { note: text(500), params: map(), metrics: { loss: rng.pick([0.1, 1e300, 2 ** 53]) } } } else { method = 'PATCH'; url = `/datasets/${ctx.ids.datasets as string}`; payload = { metadata: map(), description: text(3000) } }
    let body: string
    try { body = JSON.stringify(payload) } catch { continue }
    if (Buffer.byteLength(body) > 900_000) continue
    const res = await n.node.api.inject({ method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: body })
    sent++
    const problem = checkResponse(res, { method, path: url, params: [], query: {}, multipart: false, public: false, adminOnly: false })
    if (problem !== undefined) find('bad-response', `${problem} <- ${method} ${url} ${body.slice(0, 200)}${res.statusCode >= 500 ? ` (node log: ${lastLogged})` : ''}`)
    if (res.statusCode < 300 && method === 'POST' && url !== `/models/${ctx.ids.models as string}/training`) made.push({ url: `${url}/${res.json().id as string}`, sent: payload })
  }
  // Everything created reads back, alone and in lists.
  for (const m of made) {
    const res = await n.node.api.inject({ url: m.url, headers: n.admin })
    const problem = checkResponse(res, { method: 'GET', path: m.url, params: [], query: {}, multipart: false, public: false, adminOnly: false })
    if (problem !== undefined || res.statusCode !== 200) find('unreadable', `GET ${m.url} -> ${problem ?? res.statusCode}${res.statusCode >= 500 ? ` (node log: ${lastLogged})` : ''}`)
  }
  for (const url of ['/datasets?limit=1000', '/models?limit=1000', '/reports?limit=1000', '/users', `/datasets/${ctx.ids.datasets as string}`, `/models/${ctx.ids.models as string}`, `/users/${ctx.memberId}`]) {
    const res = await n.node.api.inject({ url, headers: n.admin })
    if (res.statusCode !== 200) find('unreadable', `GET ${url} -> ${res.statusCode} ${res.body.slice(0, 200)}${res.statusCode >= 500 ? ` (node log: ${lastLogged})` : ''}`)
  }
  t.comment(`requests: ${sent}; records created: ${made.length}`)
  t.ok(sent >= 100, `sent ${sent} requests`)
  reportFindings(t, findings, KNOWN, STRICT)
})
