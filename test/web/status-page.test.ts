// The status page at `/`, in a real headless Chromium against two real
// linked nodes: sign in through the form, both nodes on the fleet table, a
// file waiting for a peer, hostile names shown as text, a member sees
// "admins only", an expired token returns to the form. Without Chromium
// (Debian's `chromium` package; CHROMIUM_PATH overrides) that test skips
// and says why; the plain HTTP test always runs.
import t from 'tap'
import { existsSync } from 'node:fs'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { STATUS_PAGE_CSP } from '../../src/api/routes/status-page.ts'
import { ADMIN_PASSWORD, addMember, startTestNode } from '../helpers/node.ts'
import { eventually, link } from '../helpers/mesh.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const HOSTILE_DATASET = '<img src=x onerror=alert(1)>'
const HOSTILE_SITE = '<b>site-b</b><script>alert(2)</script>'

t.test('GET / serves the page and its assets from memory with a strict CSP', async t => {
  const a = await startTestNode(t)
  const page = await a.node.api.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/)
  t.equal(page.headers['content-security-policy'], STATUS_PAGE_CSP)
  t.match(STATUS_PAGE_CSP, /^default-src 'self'; /)
  t.notMatch(STATUS_PAGE_CSP, /unsafe-inline|unsafe-eval|\*|https?:/, 'no inline script or style, nothing from elsewhere')
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.equal(page.headers['x-frame-options'], 'DENY')
  t.match(page.body, /<meta name="viewport"/)
  t.notMatch(page.body, /<script>|<style|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler')
  const refs = [...page.body.matchAll(/(?:src|href)="([^"]*)"/g)].map(m => m[1])
  t.same(refs.filter(r => !(r ?? '').startsWith('/ui/')), [], 'every asset the page names is this node\'s')

  for (const [path, type] of [['/ui/status.css', /^text\/css/], ['/ui/status.js', /^text\/javascript/], ['/ui/favicon.svg', /^image\/svg\+xml/]] as const) {
    t.ok(refs.includes(path), `the page loads ${path}`)
    const res = await a.node.api.inject({ url: path })
    t.equal(res.statusCode, 200, path)
    t.match(res.headers['content-type'], type, path)
    t.equal(res.headers['x-content-type-options'], 'nosniff', path)
    t.ok(res.body.length > 0, path)
    const again = await a.node.api.inject({ url: path, headers: { 'if-none-match': String(res.headers.etag) } })
    t.equal(again.statusCode, 304, `${path}: unchanged, not sent again`)
  }
  const js = (await a.node.api.inject({ url: '/ui/status.js' })).body
  t.notMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/, 'the script never writes markup')
  t.equal((await a.node.api.inject({ url: '/fleet' })).statusCode, 401, 'the data behind the page still needs a token')
})

t.test('in Chromium: sign in, two linked nodes, a file waiting for a peer, hostile names as text', {
  skip: existsSync(CHROMIUM) ? false : `Chromium not installed at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`
}, async t => {
  const a = await startTestNode(t)
  const b = await startTestNode(t)
  await link(a, b)
  await addMember(a, 'mo')

  // Both hostile names come from elsewhere: the dataset from B, the site name from the roster.
  const renamed = await a.node.api.inject({ method: 'PUT', url: `/nodes/${b.node.peerId}`, headers: a.admin, payload: { role: 'full', name: HOSTILE_SITE } })
  t.equal(renamed.statusCode, 200, renamed.body)
  const ds = (await b.node.api.inject({ method: 'POST', url: '/datasets', headers: b.admin, payload: { name: HOSTILE_DATASET } })).json()
  const form = new FormData()
  form.append('file', new Blob(['site,rain\nb,12\n'], { type: 'text/csv' }), 'rain.csv')
  const upload = await fetch(`${b.node.url}/datasets/${ds.id}/versions`, { method: 'POST', headers: b.admin, body: form })
  t.equal(upload.status, 201)
  const sha = ((await upload.json()) as { files: Array<{ sha256: string }> }).files[0]?.sha256 ?? ''
  await eventually(async () => {
    const res = await a.node.api.inject({ url: `/datasets/${ds.id}`, headers: a.admin })
    return res.statusCode === 200 && res.json().versions?.length === 1
  }, 20_000, 'the dataset and its version on A')

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    // headless: true is Chromium's new headless mode (--headless=new); root needs --no-sandbox.
    headless: true,
    args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'],
    timeout: 30_000
  })
  t.teardown(async () => { await browser.close() })
  const origin = new URL(a.node.url).origin
  const seen = await watch(browser, origin)
  const { page } = seen
  await page.goto(`${origin}/`, { waitUntil: 'load' })

  await t.test('a wrong password shows the error and stays on the form', async t => {
    await signIn(page, 'admin', 'not the password')
    await page.waitForFunction(() => ((globalThis as any).document.getElementById('sign-in-error').textContent as string).length > 0, { timeout: 10_000 })
    t.match(await text(page, '#sign-in-error'), /wrong username or password/)
    t.equal(await visible(page, '#status'), false)
  })

  await t.test('the admin signs in and sees both nodes on the fleet table', async t => {
    await signIn(page, 'admin', ADMIN_PASSWORD)
    // Heard from, each with a verdict: which one depends on when B's status
    // was made (before its upload: healthy; after: its one copy is below
    // the mesh's target of two, a warning).
    const heard = async (): Promise<string[]> => await page.$$eval('#fleet tbody tr', (rows: any[]) =>
      rows.filter(r => r.querySelector('.verdict') !== null && !(r.textContent as string).includes('never heard from')).map(r => r.dataset.peer as string))
    await eventually(async () => {
      const peers = await heard()
      return peers.includes(a.node.peerId) && peers.includes(b.node.peerId)
    }, 60_000, 'both nodes, heard from, on the page\'s fleet table').catch(async (err: Error) => {
      throw new Error(`${err.message}; the page shows: ${await text(page, '#status')}`)
    })
    const verdicts = await page.$$eval('#fleet .verdict', (els: any[]) => els.map(e => [e.className, e.textContent]))
    t.equal(verdicts.length, 2)
    for (const [cls, word] of verdicts) t.match(word, new RegExp(`^. ${/verdict-(healthy|warning|critical)$/.exec(cls)?.[1] ?? 'no colour'}$`), 'the verdict in a word beside its colour')
    const fleet = await text(page, '#fleet')
    t.ok(fleet.includes(HOSTILE_SITE), 'the hostile site name is shown as text')
    t.match(await text(page, '#whoami'), /Signed in as admin/)
    t.match(await text(page, '#peers'), /connected/)
    t.ok(await count(page, `#peers tr[data-peer="${b.node.peerId}"]`) === 1, 'B among this node\'s peers')
    t.ok((await text(page, '#datasets')).includes(HOSTILE_DATASET), 'the hostile dataset name is shown as text')
    t.match(await text(page, `#datasets tr[data-id="${ds.id}"]`), /1\/1/, 'the sites holding its file, with the count')
    t.equal(await count(page, 'main img, main script, main b'), 0, 'no element made from a name')
  })

  await t.test('a file waiting for a peer appears in the transfers', async t => {
    // B is metered on A's side, so the pinned file waits (a background
    // fetch never uses a metered link): a state that holds, unlike a
    // transfer caught in the middle.
    const metered = await a.node.api.inject({ method: 'PATCH', url: `/peers/${b.node.peerId}`, headers: a.admin, payload: { metered: true } })
    t.equal(metered.statusCode, 200, metered.body)
    const pin = await a.node.api.inject({ method: 'POST', url: '/pins', headers: a.admin, payload: { target: 'dataset', value: ds.id } })
    t.equal(pin.statusCode, 201, pin.body)
    await eventually(async () => (await a.node.api.inject({ url: '/transfers', headers: a.admin })).json().wanted.some((w: any) => w.waiting !== undefined), 10_000, 'the file waiting on A')
    // The page refreshes by itself every 10 s.
    await page.waitForSelector(`#transfers tr[data-sha256="${sha}"]`, { timeout: 25_000 })
    const row = await text(page, `#transfers tr[data-sha256="${sha}"]`)
    t.match(row, /rain\.csv/, 'by its file name')
    t.ok(row.includes(HOSTILE_DATASET), 'and its dataset')
    t.match(row, /metered/, 'with why it waits')
  })

  await t.test('an expired token returns to the sign-in form', async t => {
    const token = await page.evaluate(() => (globalThis as any).sessionStorage.getItem('dw-status.token') as string)
    const logout = await a.node.api.inject({ method: 'POST', url: '/auth/logout', headers: { authorization: `Bearer ${token}` } })
    t.equal(logout.statusCode, 204)
    await page.click('#refresh-now')
    await page.waitForSelector('#sign-in', { visible: true, timeout: 10_000 })
    t.match(await text(page, '#sign-in-note'), /sign in again/)
    t.equal(await count(page, '#fleet tbody tr'), 0, 'what was shown is gone')
  })

  await t.test('a member sees "admins only" on the fleet, the rest as usual; sign out', async t => {
    await signIn(page, 'mo', 'member password')
    await page.waitForSelector('#fleet .admins-only', { timeout: 15_000 })
    t.match(await text(page, '#fleet'), /Admins only/)
    await page.waitForSelector(`#peers tr[data-peer="${b.node.peerId}"]`, { timeout: 15_000 })
    t.ok((await text(page, '#datasets')).includes(HOSTILE_DATASET))
    await page.click('#sign-out')
    await page.waitForSelector('#sign-in', { visible: true, timeout: 10_000 })
    t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('dw-status.token')), null, 'the token is forgotten')
    t.match(await text(page, '#sign-in-note'), /Signed out/)
  })

  t.same(seen.offNode, [], 'every request went to the node')
  t.notOk(seen.requests.some(url => url === `${origin}/x`), 'no image made from a name was loaded')
  t.same(seen.dialogs, [], 'no script from a name ran')
  t.same(seen.problems, [], 'no script error, no CSP violation')
  t.ok(seen.requests.some(url => url.startsWith(`${origin}/datasets/${ds.id}/availability`)))
})

interface Watched { page: Page, requests: string[], offNode: string[], dialogs: string[], problems: string[] }

/** A page whose requests, dialogs, errors and CSP reports are recorded; a request off the node is refused. */
async function watch (browser: Browser, origin: string): Promise<Watched> {
  const page = await browser.newPage()
  await page.setViewport({ width: 390, height: 844 })
  const seen: Watched = { page, requests: [], offNode: [], dialogs: [], problems: [] }
  await page.setRequestInterception(true)
  page.on('request', request => {
    const url = request.url()
    seen.requests.push(url)
    if (url.startsWith(`${origin}/`)) void request.continue()
    else { seen.offNode.push(url); void request.abort() }
  })
  page.on('dialog', dialog => { seen.dialogs.push(dialog.message()); void dialog.dismiss() })
  page.on('pageerror', err => { seen.problems.push(String(err)) })
  page.on('console', message => {
    // Failed API calls (the wrong password's 401) log as network errors: expected here.
    if (message.type() === 'error' && !/status of (401|403)/.test(message.text())) seen.problems.push(message.text())
  })
  return seen
}

async function signIn (page: Page, username: string, password: string): Promise<void> {
  await page.waitForSelector('#sign-in', { visible: true, timeout: 10_000 })
  await page.$eval('#sign-in-form', (form: any) => { form.reset() })
  await page.type('#username', username)
  await page.type('#password', password)
  await page.click('#sign-in-button')
}

async function text (page: Page, selector: string): Promise<string> {
  return await page.$eval(selector, (e: any) => e.textContent as string)
}

async function count (page: Page, selector: string): Promise<number> {
  return await page.$$eval(selector, (els: any[]) => els.length)
}

async function visible (page: Page, selector: string): Promise<boolean> {
  return await page.$eval(selector, (e: any) => !e.hidden)
}
