import { Command } from 'commander'
import { DwError } from '../../errors.ts'
import { formatLink, formatWindow, parseRate, parseWindow, type LinkPatch, type LinkProfile } from '../../peer/link-profile.ts'
import { apiCommand, asOption, connect, type ConnectionOptions } from '../options.ts'
import { bytes, duration, fields, json, table } from '../output.ts'

/** One trusted peer as GET /peers and GET /sync/status report it (PeerSyncStatus on the node). */
export interface PeerStatus {
  peerId: string
  name?: string
  addrs?: string[]
  connected?: boolean
  lastSyncAt?: string
  behindPeer?: number | null
  peerBehind?: number | null
  bytesIn?: number
  bytesOut?: number
  lastError?: string
  /** Over a sync quota: why, and until when (absent: its next session). */
  throttled?: { reason: string, until?: string }
  /** Its link profile: rate cap, files window, metered. */
  link?: LinkProfile
}
interface PeerEntry { peerId: string, name?: string, addrs: string[], link?: LinkProfile }
interface PendingPeer { peerId: string, addr: string, firstSeenAt: number, lastSeenAt: number, attempts: number }

/** "3m 2s ago" for an ISO time or epoch milliseconds; `never` when absent. */
export function ago (at: string | number | undefined): string {
  const time = typeof at === 'string' ? Date.parse(at) : at
  if (time === undefined || Number.isNaN(time)) return 'never'
  return `${duration((Date.now() - time) / 1000)} ago`
}

/** The peers table of `dw peer ls` and `dw status`: connection, last sync, lag both ways, traffic, last error. */
export function peerTable (peers: PeerStatus[], withAddresses: boolean): void {
  table(peers, [
    { header: 'NAME', value: p => p.name ?? '-' },
    { header: 'PEER ID', value: p => p.peerId },
    ...(withAddresses ? [{ header: 'ADDRESSES', value: (p: PeerStatus) => p.addrs }] : []),
    { header: 'CONNECTED', value: p => p.connected === true ? 'yes' : 'no' },
    { header: 'LAST SYNC', value: p => ago(p.lastSyncAt) },
    // behindPeer: their changes not yet here; peerBehind: ours they have not acknowledged.
    { header: 'TO PULL', value: p => p.behindPeer ?? '?' },
    { header: 'TO PUSH', value: p => p.peerBehind ?? '?' },
    { header: 'IN', value: p => bytes(p.bytesIn ?? 0) },
    { header: 'OUT', value: p => bytes(p.bytesOut ?? 0) },
    { header: 'LINK', value: p => formatLink(p.link) },
    { header: 'THROTTLED', value: p => p.throttled === undefined ? '-' : `${p.throttled.reason}${p.throttled.until === undefined ? '' : ` until ${p.throttled.until}`}` },
    { header: 'LAST ERROR', value: p => p.lastError }
  ], '(no peers yet; add one with: dw peer add <multiaddr>)')
}

function showEntry (verb: string, entry: PeerEntry, options: ConnectionOptions): void {
  if (options.json === true) return json(entry)
  process.stdout.write(`${verb} peer ${entry.name ?? entry.peerId}\n`)
  fields([['peer id', entry.peerId], ['name', entry.name], ['addresses', entry.addrs]])
}

interface AddOptions extends ConnectionOptions { name?: string, role?: string }

function add (): Command {
  return apiCommand('add', 'trust a peer by the multiaddr its node printed at init (ending in /p2p/<peerId>)')
    .argument('<multiaddr>', 'e.g. /ip4/10.1.2.3/tcp/4001/p2p/12D3KooW...')
    .option('--name <name>', 'a human name for the peer\'s site')
    .option('--role <role>', 'on a full node, the role a peer new to the mesh gets: full, contributor (default) or read-only')
    .action(async (multiaddr: string, options: AddOptions) => {
      const client = await connect(options)
      const entry = await client.request<PeerEntry & { enrolled?: string }>('POST', '/peers', { json: { multiaddr, name: options.name, role: options.role } })
      showEntry('trusted', entry, options)
      if (options.json !== true && entry.enrolled !== undefined) process.stdout.write(`added to the mesh roster as ${entry.enrolled}\n`)
    })
}

function list (): Command {
  return apiCommand('ls', 'list trusted peers with connection and sync status')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: PeerStatus[] }>('GET', '/peers')
      if (options.json === true) return json(items)
      peerTable(items, true)
    })
}

// Commander turns an option parser's null into '', so 'none' stays a word until the action.
interface SetOptions extends ConnectionOptions { maxRate?: number | 'none', filesWindow?: string, metered?: boolean }

function set (): Command {
  return apiCommand('set', 'set how this node uses its link to a peer: a rate cap, a window for background file transfers, metered')
    .argument('<peerId>')
    .option('--max-rate <rate>', 'cap bytes each way to this peer (files; sync sent to it), e.g. 256kbit, 1mbit, 64kB, 2MB; none to lift it',
      asOption(v => v === 'none' ? 'none' : parseRate(v)))
    .option('--files-window <HH:MM-HH:MM>', 'fetch files from this peer in the background only inside this local-time window (may cross midnight, e.g. 22:00-06:00); none for any time',
      asOption(v => v === 'none' ? 'none' : formatWindow(parseWindow(v))))
    .option('--metered', 'never fetch files from this peer in the background (downloads someone asks for still may)')
    .option('--no-metered', 'fetch files from this peer in the background again')
    .action(async (peerId: string, options: SetOptions) => {
      const patch: LinkPatch = {}
      if (options.maxRate !== undefined) patch.maxRate = options.maxRate === 'none' ? null : options.maxRate
      if (options.filesWindow !== undefined) patch.filesWindow = options.filesWindow === 'none' ? null : options.filesWindow
      if (options.metered !== undefined) patch.metered = options.metered
      if (Object.keys(patch).length === 0) throw new DwError('INVALID_INPUT', 'nothing to set: give --max-rate, --files-window, --metered or --no-metered')
      const client = await connect(options)
      const entry = await client.request<PeerEntry>('PATCH', `/peers/${encodeURIComponent(peerId)}`, { json: patch })
      if (options.json === true) return json(entry)
      process.stdout.write(`peer ${entry.name ?? entry.peerId}: ${entry.link === undefined ? 'no link profile (no rate cap, files any time)' : formatLink(entry.link)}\n`)
    })
}

function remove (): Command {
  return apiCommand('rm', 'stop trusting a peer; its connections close at once')
    .argument('<peerId>')
    .action(async (peerId: string, options: ConnectionOptions) => {
      const client = await connect(options)
      await client.request('DELETE', `/peers/${encodeURIComponent(peerId)}`)
      if (options.json === true) return json({ peerId, removed: true })
      process.stdout.write(`removed peer ${peerId}\n`)
    })
}

function pending (): Command {
  return apiCommand('pending', 'list untrusted peers that tried to connect (kept 7 days after they were last seen)')
    .action(async (options: ConnectionOptions) => {
      const client = await connect(options)
      const { items } = await client.request<{ items: PendingPeer[] }>('GET', '/peers/pending')
      if (options.json === true) return json(items)
      table(items, [
        { header: 'PEER ID', value: p => p.peerId },
        { header: 'FROM', value: p => p.addr },
        { header: 'FIRST SEEN', value: p => ago(p.firstSeenAt) },
        { header: 'LAST SEEN', value: p => ago(p.lastSeenAt) },
        { header: 'ATTEMPTS', value: p => p.attempts }
      ], '(no pending requests)')
    })
}

interface ApproveOptions extends ConnectionOptions { addr?: string, name?: string }

function approve (): Command {
  return apiCommand('approve', 'trust a peer that tried to connect')
    .argument('<peerId>')
    .option('--addr <multiaddr>', 'the address it listens on (default: the one it connected from, often an ephemeral port)')
    .option('--name <name>', 'a human name for the peer\'s site')
    .action(async (peerId: string, options: ApproveOptions) => {
      const client = await connect(options)
      const entry = await client.request<PeerEntry>('POST', `/peers/pending/${encodeURIComponent(peerId)}/approve`, {
        json: { multiaddr: options.addr, name: options.name }
      })
      showEntry('approved', entry, options)
    })
}

function dismiss (): Command {
  return apiCommand('dismiss', 'forget a pending request without trusting the peer (listed again if it knocks again)')
    .argument('<peerId>')
    .action(async (peerId: string, options: ConnectionOptions) => {
      const client = await connect(options)
      await client.request('DELETE', `/peers/pending/${encodeURIComponent(peerId)}`)
      if (options.json === true) return json({ peerId, dismissed: true })
      process.stdout.write(`dismissed the pending request from peer ${peerId}\n`)
    })
}

export function peerCommand (): Command {
  return new Command('peer').description('manage the peer book: the other sites this node trusts')
    .addCommand(add())
    .addCommand(list())
    .addCommand(set())
    .addCommand(remove())
    .addCommand(pending())
    .addCommand(approve())
    .addCommand(dismiss())
}
