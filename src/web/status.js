// The node's status page: the fleet, this node's peers, transfers, and
// where each dataset's files are. Plain JavaScript served by the node
// itself: no build step, nothing loaded from elsewhere.
//
// Every string shown here may come from another site, and a site may be
// hostile: names, peer ids, error messages all enter the page as text
// (textContent, Text nodes), never as markup, and never into an attribute
// that could run or load anything.

const TOKEN_KEY = 'dw-status.token'
const USER_KEY = 'dw-status.username'
const REFRESH_MS = 10_000
/** Dataset availability asks every connected peer, so it is looked at every sixth refresh (once a minute). */
const DATASETS_EVERY = 6
const DATASET_LIMIT = 50
const AVAILABILITY_CONCURRENCY = 4

/** The token expired or was revoked: the page is back at the sign-in form. */
class SignedOut extends Error {}

class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

const $ = id => document.getElementById(id)

/** An element with fixed attributes and text or element children; strings become Text nodes. */
function el (tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (name === 'class') node.className = value
    else node.setAttribute(name, String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    node.append(child instanceof Node ? child : String(child))
  }
  return node
}

// ---- formatting -------------------------------------------------------

function bytes (n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '?'
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++ }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`
}

function duration (seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '?'
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`
}

function ago (iso) {
  const t = Date.parse(iso)
  return Number.isNaN(t) ? undefined : `${duration((Date.now() - t) / 1000)} ago`
}

const shortId = id => typeof id === 'string' && id.length > 14 ? `${id.slice(0, 6)}…${id.slice(-6)}` : String(id ?? '?')
const shortSha = sha => typeof sha === 'string' ? sha.slice(0, 12) : '?'

// ---- what the page knows between refreshes ----------------------------

const known = {
  /** peer id -> site name, from the fleet and the sync status. */
  peerNames: new Map(),
  /** sha256 -> { file, dataset }, from the datasets' availability. */
  files: new Map(),
  refreshes: 0,
  /** Bumped by every refresh and by signing out: only the latest refresh renders and schedules the next. */
  run: 0,
  timer: undefined
}

const peerName = id => known.peerNames.get(id) ?? shortId(id)

/** A peer as text: its name, with the full id on hover. */
const peerCell = id => el('span', { title: id, 'data-peer': id }, peerName(id))

// ---- the API -----------------------------------------------------------

function errorMessage (body, res) {
  const message = body?.error?.message
  return typeof message === 'string' ? message : `${res.status} ${res.statusText}`
}

async function api (path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token === null) throw new SignedOut()
  const res = await fetch(path, { ...init, cache: 'no-store', headers: { ...init.headers, authorization: `Bearer ${token}` } })
  if (res.status === 401) {
    signOutHere('Your session has ended: sign in again.')
    throw new SignedOut()
  }
  const body = res.status === 204 ? undefined : await res.json().catch(() => undefined)
  if (!res.ok) throw new ApiError(res.status, errorMessage(body, res))
  return body
}

/** Runs `fn` over `items`, at most `n` at a time, in order of the results. */
async function mapLimited (items, n, fn) {
  const out = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      try { out[i] = { ok: true, value: await fn(items[i]) } } catch (err) { out[i] = { ok: false, error: err } }
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
  return out
}

// ---- signing in and out ------------------------------------------------

function showSignIn (note) {
  $('status').hidden = true
  $('account').hidden = true
  $('sign-in').hidden = false
  $('sign-in-note').textContent = note ?? ''
  $('username').focus()
}

function showStatus () {
  $('sign-in').hidden = true
  $('sign-in-error').textContent = ''
  $('sign-in-note').textContent = ''
  $('whoami').textContent = `Signed in as ${sessionStorage.getItem(USER_KEY) ?? '?'}`
  $('account').hidden = false
  $('status').hidden = false
  known.refreshes = 0
  void refresh()
}

/** Forgets the token and what was shown (the next person at this phone sees nothing of it). */
function signOutHere (note) {
  known.run++
  clearTimeout(known.timer)
  sessionStorage.removeItem(TOKEN_KEY)
  sessionStorage.removeItem(USER_KEY)
  for (const body of document.querySelectorAll('#status .body')) body.replaceChildren()
  $('updated').textContent = ''
  known.files.clear()
  known.peerNames.clear()
  showSignIn(note)
}

async function signIn (event) {
  event.preventDefault()
  const form = event.target
  const button = $('sign-in-button')
  $('sign-in-error').textContent = ''
  button.disabled = true
  try {
    const username = form.elements.username.value
    const res = await fetch('/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: form.elements.password.value })
    })
    const body = await res.json().catch(() => undefined)
    if (!res.ok || typeof body?.token !== 'string') {
      $('sign-in-error').textContent = errorMessage(body, res)
      return
    }
    sessionStorage.setItem(TOKEN_KEY, body.token)
    sessionStorage.setItem(USER_KEY, typeof body.user?.username === 'string' ? body.user.username : username)
    form.reset()
    showStatus()
  } catch (err) {
    $('sign-in-error').textContent = `This node did not answer: ${err.message}`
  } finally {
    button.disabled = false
  }
}

async function signOut () {
  // Revoked on the node too, so the token is worthless if it leaked; signed out here whatever happens.
  await api('/auth/logout', { method: 'POST' }).catch(() => {})
  signOutHere('Signed out.')
}

// ---- refreshing --------------------------------------------------------

async function refresh () {
  clearTimeout(known.timer)
  const run = ++known.run
  const withDatasets = known.refreshes % DATASETS_EVERY === 0
  known.refreshes++
  const [health, fleet, sync, transfers, datasets] = await Promise.allSettled([
    fetch('/healthz', { cache: 'no-store' }).then(res => res.json()),
    api('/fleet'),
    api('/sync/status'),
    api('/transfers'),
    withDatasets ? loadDatasets() : Promise.resolve(undefined)
  ])
  if (run !== known.run) return
  if ([fleet, sync, transfers, datasets].some(r => r.status === 'rejected' && r.reason instanceof SignedOut)) return

  if (health.status === 'fulfilled') {
    const name = typeof health.value?.name === 'string' ? health.value.name : ''
    $('node-name').textContent = name
    document.title = name === '' ? 'dw-mesh node status' : `${name}: dw-mesh node status`
  }
  if (fleet.status === 'fulfilled') for (const row of fleet.value.rows ?? []) known.peerNames.set(row.peerId, row.name)
  if (sync.status === 'fulfilled') for (const p of sync.value.peers ?? []) if (typeof p.name === 'string' && p.name !== '') known.peerNames.set(p.peerId, p.name)

  // Datasets first: they name the files the transfers show by hash.
  if (withDatasets) render('datasets', datasets, renderDatasets)
  render('fleet', fleet, renderFleet)
  render('peers', sync, renderPeers)
  render('transfers', transfers, renderTransfers)

  const unreachable = [fleet, sync, transfers].every(r => r.status === 'rejected' && !(r.reason instanceof ApiError))
  $('updated').textContent = unreachable
    ? `This node did not answer at ${new Date().toLocaleTimeString()}; trying again every ${REFRESH_MS / 1000} s.`
    : `Updated ${new Date().toLocaleTimeString()}; refreshed every ${REFRESH_MS / 1000} s.`
  known.timer = setTimeout(refresh, REFRESH_MS)
}

/** Fills a section from its result: the table, "admins only", or the error in words. */
function render (id, result, fn) {
  const body = document.querySelector(`#${id} .body`)
  let err = result.reason
  if (result.status === 'fulfilled') {
    // An answer of an unexpected shape (a node of another version) spoils this section only, and the next refresh still runs.
    try {
      body.replaceChildren(...[fn(result.value)].flat())
      return
    } catch (renderError) {
      err = renderError
    }
  }
  if (err instanceof ApiError && err.status === 403) {
    body.replaceChildren(el('p', { class: 'note admins-only' }, 'Admins only: sign in with an admin account to see this section.'))
  } else {
    body.replaceChildren(el('p', { class: 'problem' }, `Could not load this section: ${err?.message ?? String(err)}`))
  }
}

function table (headings, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'muted empty' }, empty)
  return el('div', { class: 'table-wrap' },
    el('table', {},
      el('thead', {}, el('tr', {}, headings.map(h => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows)))
}

const dash = () => el('span', { class: 'muted' }, '—')
const count = n => typeof n === 'number' ? el('span', { class: n > 0 ? 'attention' : undefined }, String(n)) : dash()

// ---- the fleet ---------------------------------------------------------

const VERDICTS = { healthy: '✓', warning: '!', critical: '✕' }

function verdictBadge (verdict) {
  const listed = Object.hasOwn(VERDICTS, verdict)
  const word = listed ? verdict : String(verdict ?? 'unknown')
  return el('span', { class: `verdict verdict-${listed ? verdict : 'unknown'}` }, el('span', { 'aria-hidden': 'true' }, listed ? VERDICTS[verdict] : '?'), ' ', word)
}

function asOf (row) {
  if (!row.heard) return el('span', { class: 'attention' }, 'never heard from')
  const age = typeof row.ageSeconds === 'number' ? `${duration(row.ageSeconds)} ago` : (ago(row.asOf) ?? '?')
  if (row.self) return `${age} (this node)`
  return [age, ' via ', row.via === undefined ? '?' : el('span', { title: row.via }, row.viaName ?? shortId(row.via))]
}

function lag (row) {
  if (row.lagSeconds === null || row.lagSeconds === undefined) return el('span', { class: 'muted' }, 'no link known')
  const records = typeof row.lagRecords === 'number' ? `, ${row.lagRecords} changes` : ''
  return row.lagSeconds === 0 && (row.lagRecords ?? 0) === 0 ? 'caught up' : `${duration(row.lagSeconds)}${records}`
}

function disk (row) {
  const d = row.disk
  if (d === null || d === undefined || typeof d.free !== 'number') return dash()
  const percent = d.total > 0 ? ` (${Math.round(d.free / d.total * 100)}%)` : ''
  return `${bytes(d.free)}${percent}`
}

function renderFleet (view) {
  const rows = (view.rows ?? []).map(row => el('tr', { 'data-peer': row.peerId, class: row.self ? 'self' : undefined },
    el('th', { scope: 'row', class: 'name' }, row.name, row.role ? el('span', { class: 'role' }, row.role) : null),
    el('td', { class: 'verdict-cell' }, verdictBadge(row.verdict),
      (row.reasons ?? []).length > 0 ? el('span', { class: 'reasons' }, row.reasons.join('; ')) : null),
    el('td', { class: 'id' }, el('span', { title: row.peerId }, shortId(row.peerId))),
    el('td', {}, asOf(row)),
    el('td', {}, lag(row)),
    el('td', {}, disk(row)),
    el('td', { class: 'num' }, count(row.belowTarget)),
    el('td', { class: 'num' }, count(row.quarantined))))
  // The verdict next to the site: on a phone it shows before any sideways scroll.
  return table(['Site', 'Verdict', 'Node', 'Status as of', 'Lag', 'Free disk', 'Files below target', 'Quarantine'], rows, 'No node in the roster yet.')
}

// ---- this node's peers -------------------------------------------------

function linkProfile (link) {
  if (link === undefined || link === null) return dash()
  const parts = []
  if (link.metered === true) parts.push('metered')
  if (typeof link.maxRate === 'number') parts.push(`≤ ${bytes(link.maxRate)}/s`)
  if (typeof link.filesWindow === 'string') parts.push(`files ${link.filesWindow}`)
  return parts.length === 0 ? dash() : parts.join(', ')
}

function renderPeers (status) {
  const self = el('p', { class: 'muted' }, 'This node: ', el('span', { class: 'id', title: status.peerId }, shortId(status.peerId)),
    `, ${typeof status.feedHead === 'number' ? status.feedHead : '?'} changes in its feed.`)
  const rows = (status.peers ?? []).map(p => el('tr', { 'data-peer': p.peerId },
    el('th', { scope: 'row', class: 'name' }, peerName(p.peerId), el('span', { class: 'id', title: p.peerId }, shortId(p.peerId))),
    el('td', {}, el('span', { class: p.connected ? 'state state-up' : 'state state-down' }, p.connected ? '● connected' : '○ not connected')),
    el('td', {}, p.lastSyncAt ? ago(p.lastSyncAt) ?? '?' : el('span', { class: 'muted' }, 'never')),
    el('td', { class: 'num' }, count(p.behindPeer)),
    el('td', { class: 'num' }, count(p.peerBehind)),
    el('td', {}, `${bytes(p.bytesIn)} in, ${bytes(p.bytesOut)} out`),
    el('td', {}, linkProfile(p.link)),
    el('td', { class: 'problem-cell' },
      p.throttled ? el('span', { class: 'attention' }, `throttled: ${p.throttled.reason}`) : null,
      p.lastError ? el('span', { class: 'reasons' }, p.lastError) : null)))
  return [self, table(['Peer', 'Connection', 'Last sync', 'Changes to receive', 'Changes to send', 'Traffic', 'Link profile', 'Problem'], rows, 'No peer yet: an admin adds one with dw peer add.')]
}

// ---- transfers ---------------------------------------------------------

function fileCell (sha256) {
  const f = known.files.get(sha256)
  return el('span', { title: sha256 }, f === undefined ? shortSha(sha256) : f.file)
}

function datasetCell (sha256) {
  const f = known.files.get(sha256)
  return f === undefined ? dash() : f.dataset
}

function renderTransfers (t) {
  const running = (t.transfers ?? []).map(x => {
    const total = typeof x.total === 'number' ? x.total : undefined
    const progress = total === undefined ? el('progress', {}) : el('progress', { max: total, value: x.done })
    return el('tr', { 'data-sha256': x.sha256 },
      el('th', { scope: 'row', class: 'name' }, fileCell(x.sha256)),
      el('td', {}, datasetCell(x.sha256)),
      el('td', {}, x.peer ? peerCell(x.peer) : dash()),
      el('td', { class: 'progress' }, progress, ` ${bytes(x.done)} of ${total === undefined ? '?' : bytes(total)}`),
      el('td', {}, x.queued ? 'queued for the peer' : 'receiving'))
  })
  const wanted = (t.wanted ?? []).map(w => el('tr', { 'data-sha256': w.sha256 },
    el('th', { scope: 'row', class: 'name' }, fileCell(w.sha256)),
    el('td', {}, datasetCell(w.sha256)),
    el('td', { class: 'num' }, w.size > 0 ? bytes(w.size) : '?'),
    el('td', {}, el('span', { class: 'reasons' }, w.waiting ?? 'not tried yet'))))
  return [
    el('h3', {}, 'In progress'),
    table(['File', 'Dataset', 'From', 'Progress', 'State'], running, 'No transfer in progress.'),
    el('h3', {}, 'Waiting for a peer'),
    table(['File', 'Dataset', 'Size', 'Why it waits'], wanted, 'No file waiting for a peer.')
  ]
}

// ---- datasets ----------------------------------------------------------

async function loadDatasets () {
  const page = await api(`/datasets?limit=${DATASET_LIMIT}`)
  const items = page.items ?? []
  const availability = await mapLimited(items, AVAILABILITY_CONCURRENCY, async item =>
    (item.blobs ?? []).length === 0 ? { items: [] } : await api(`/datasets/${encodeURIComponent(item.id)}/availability`))
  const signedOut = availability.find(a => !a.ok && a.error instanceof SignedOut)
  if (signedOut !== undefined) throw signedOut.error
  return { total: page.total, items, availability }
}

/** Per site, how many of the dataset's distinct files it holds; the fewest copies of any file; the target. */
function holdings (versions) {
  const files = new Map()
  for (const v of versions) for (const f of v.files ?? []) files.set(f.sha256, f)
  const bySite = new Map()
  let fewest
  let target
  let here = 0
  for (const f of files.values()) {
    if (f.present) here++
    for (const h of f.holders ?? []) {
      const site = bySite.get(h.peerId) ?? { peerId: h.peerId, name: h.name, count: 0 }
      site.count++
      bySite.set(h.peerId, site)
    }
    if (typeof f.copies === 'number') fewest = Math.min(fewest ?? Infinity, f.copies)
    if (typeof f.target === 'number') target = f.target
  }
  const sites = [...bySite.values()].sort((a, b) => b.count - a.count || String(a.name ?? a.peerId).localeCompare(String(b.name ?? b.peerId)))
  return { files, sites, fewest, target, here }
}

function renderDatasets (data) {
  known.files.clear()
  for (const item of data.items) for (const sha of item.blobs ?? []) known.files.set(sha, { file: shortSha(sha), dataset: item.name })
  const rows = data.items.map((item, i) => {
    const result = data.availability[i]
    const name = el('th', { scope: 'row', class: 'name' }, item.name)
    if (!result.ok) {
      return el('tr', { 'data-id': item.id }, name, el('td', { colspan: 5, class: 'problem' }, `Could not ask where its files are: ${result.error?.message ?? String(result.error)}`))
    }
    const versions = result.value.items ?? []
    const h = holdings(versions)
    for (const v of versions) for (const f of v.files ?? []) known.files.set(f.sha256, { file: f.name, dataset: item.name })
    const n = h.files.size
    const sites = h.sites.length === 0
      ? (n === 0 ? el('span', { class: 'muted' }, 'no files') : el('span', { class: 'attention' }, 'no site known to hold them'))
      : el('ul', { class: 'sites' }, h.sites.map(s => el('li', { class: s.count === n ? 'site complete' : 'site partial', title: s.peerId },
        s.name ?? known.peerNames.get(s.peerId) ?? shortId(s.peerId), el('span', { class: 'count' }, `${s.count}/${n}`))))
    const copies = h.fewest === undefined ? dash() : el('span', { class: h.target !== undefined && h.fewest < h.target ? 'attention' : undefined }, `${h.fewest}${h.target === undefined ? '' : ` of ${h.target}`}`)
    return el('tr', { 'data-id': item.id },
      name,
      el('td', {}, sites),
      el('td', { class: 'num' }, n === 0 ? dash() : `${h.here}/${n}`),
      el('td', { class: 'num' }, copies),
      el('td', { class: 'num' }, String(versions.length)),
      el('td', { class: 'num' }, String(n)))
  })
  const total = typeof data.total === 'number' ? data.total : data.items.length
  const summary = el('p', { class: 'muted' }, total > data.items.length ? `The first ${data.items.length} of ${total} datasets.` : `${total} dataset${total === 1 ? '' : 's'}.`)
  return [summary, table(['Dataset', 'Sites holding its files', 'Here', 'Fewest copies', 'Versions', 'Files'], rows, 'No dataset yet.')]
}

// ---- start -------------------------------------------------------------

$('sign-in-form').addEventListener('submit', event => { void signIn(event) })
$('sign-out').addEventListener('click', () => { void signOut() })
$('refresh-now').addEventListener('click', () => { known.refreshes = 0; void refresh() })
if (sessionStorage.getItem(TOKEN_KEY) === null) showSignIn()
else showStatus()
