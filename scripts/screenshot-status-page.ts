#!/usr/bin/env node
/**
 * The README's picture of the status page: two linked nodes in temp
 * directories, a few datasets whose files sit on one site or both, a file
 * waiting behind a metered link; the page opened on the first node in
 * Debian's headless Chromium at desktop width, signed in as the admin.
 *
 *   node scripts/screenshot-status-page.ts [--out docs/img/status-page.png] [--width 1200]
 *
 * CHROMIUM_PATH overrides /usr/bin/chromium. Every wait is bounded; the
 * nodes and their directories are gone when it ends.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import puppeteer from 'puppeteer-core'
import { initNode, startNode, type RunningNode } from '../src/node.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const PASSWORD = 'screenshot-admin-password'

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'docs/img/status-page.png' },
    width: { type: 'string', default: '1200' }
  }
})

interface Site { node: RunningNode, auth: { authorization: string } }

async function call (site: Site, method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: object): Promise<any> {
  const res = await site.node.api.inject({ method, url, headers: site.auth, ...(payload === undefined ? {} : { payload }) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.body === '' ? undefined : res.json()
}

async function until (what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

async function site (root: string, name: string, joins: boolean): Promise<Site> {
  const dataDir = join(root, name)
  await initNode({ dataDir, name, adminPassword: PASSWORD, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join: joins, files: { copy: false } })
  const node = await startNode({ dataDir })
  const res = await node.api.inject({ method: 'POST', url: '/auth/login', payload: { username: 'admin', password: PASSWORD } })
  return { node, auth: { authorization: `Bearer ${res.json().token as string}` } }
}

async function dataset (s: Site, name: string, files: Array<[string, string]>): Promise<{ id: string }> {
  const ds = await call(s, 'POST', '/datasets', { name, tags: ['field'] })
  const form = new FormData()
  for (const [file, body] of files) form.append('file', new Blob([body], { type: 'text/csv' }), file)
  const res = await fetch(`${s.node.url}/datasets/${ds.id as string}/versions`, { method: 'POST', headers: s.auth, body: form })
  if (res.status !== 201) throw new Error(`upload to ${name}: ${res.status} ${await res.text()}`)
  return ds
}

const csv = (rows: number, seed: number): string => ['day,value', ...Array.from({ length: rows }, (_, i) => `${i + 1},${((i * 7 + seed) % 31) / 10}`)].join('\n') + '\n'

const root = await mkdtemp(join(tmpdir(), 'dw-screenshot-'))
const sites: Site[] = []
try {
  const north = await site(root, 'north-station', false)
  sites.push(north)
  const ship = await site(root, 'ship-aurora', true)
  sites.push(ship)
  const addressOf = (s: Site): string => s.node.addresses().find(a => a.includes('/ip4/127.0.0.1/')) ?? ''
  await call(north, 'POST', '/peers', { multiaddr: addressOf(ship), name: 'ship-aurora', role: 'full' })
  await call(ship, 'POST', '/peers', { multiaddr: addressOf(north), name: 'north-station' })
  await until('both sites in both rosters', async () => (await ship.node.nodes.list()).length === 2 && (await north.node.nodes.list()).length === 2)

  const rainfall = await dataset(ship, 'Rainfall 2024', [['rain-jan.csv', csv(31, 1)], ['rain-feb.csv', csv(28, 2)]])
  const soil = await dataset(ship, 'Soil cores, transect B', [['cores.csv', csv(400, 3)]])
  await dataset(north, 'Bird counts', [['counts.csv', csv(60, 4)], ['observers.csv', 'name\nkim\nlee\n']])
  await dataset(north, 'Weather station log', [['log.csv', csv(200, 5)]])
  await until('the datasets on north-station', async () => (await call(north, 'GET', '/datasets')).total === 4)

  // One file of Rainfall fetched by north-station on demand: it then holds 1 of 2.
  const rain = await call(north, 'GET', `/datasets/${rainfall.id}`)
  const got = await fetch(`${north.node.url}/datasets/${rainfall.id}/versions/${rain.versions[0].id as string}/files/rain-jan.csv`, { headers: north.auth })
  await got.arrayBuffer()
  // The soil cores are pinned on north-station, but the ship's link is metered: they wait.
  await call(north, 'PATCH', `/peers/${ship.node.peerId}`, { metered: true })
  await call(north, 'POST', '/pins', { target: 'dataset', value: soil.id })
  await until('a file waiting on north-station', async () => (await call(north, 'GET', '/transfers')).wanted.length > 0)

  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage', '--force-prefers-reduced-motion'] })
  try {
    const page = await browser.newPage()
    await page.setViewport({ width: Number(values.width), height: 900, deviceScaleFactor: 1 })
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }])
    await page.goto(`${north.node.url}/`, { waitUntil: 'load' })
    await page.waitForSelector('#sign-in', { visible: true, timeout: 10_000 })
    await page.type('#username', 'admin')
    await page.type('#password', PASSWORD)
    await page.click('#sign-in-button')
    await until('both sites heard from, the datasets and the waiting file on the page', async () =>
      await page.$$eval('#fleet tbody tr', (rows: any[]) => rows.filter(r => r.querySelector('.verdict') !== null && !(r.textContent as string).includes('never heard from')).length) === 2 &&
      await page.$$eval('#datasets tbody tr', (els: any[]) => els.length) === 4 &&
      await page.$$eval('#transfers tbody tr', (els: any[]) => els.length) === 1, 60_000)
    await mkdir(dirname(values.out), { recursive: true })
    await page.screenshot({ path: values.out as `${string}.png`, fullPage: true })
    console.log(`wrote ${values.out}`)
  } finally {
    await browser.close()
  }
} finally {
  for (const s of sites.reverse()) await s.node.stop()
  await rm(root, { recursive: true, force: true })
}
