/**
 * The host side of `--netns`: names that cannot collide with another run,
 * a subnet that clashes with no route, and removal of what a run that died
 * without cleaning up (SIGKILL, power cut) left behind.
 */
import { sh } from './shell.ts'
import type { NetnsTools } from './netns-preflight.ts'

/** Names of one run's namespaces and its root-side interface. */
export interface NetnsNames {
  /** `dwsim-<pid>-<seq>`: every namespace of the run starts with it. */
  prefix: string
  hub: string
  node: (i: number) => string
  /** Interface in the root namespace (at most 15 characters): `dws<pid>-<seq>`. */
  rootLink: string
}

let runs = 0

/** Names for a new run of this process; the pid is what the stale sweep checks. */
export function netnsNames (): NetnsNames {
  const id = `${process.pid}-${runs++}`
  const prefix = `dwsim-${id}`
  const rootLink = `dws${id}`
  if (rootLink.length > 15) throw new Error(`interface name ${rootLink} is longer than 15 characters`)
  return { prefix, hub: `${prefix}-hub`, node: i => `${prefix}-n${i}`, rootLink }
}

const STALE_NS = /^dwsim-(\d+)-\d+-(hub|n\d+)$/
const STALE_LINK = /^dws(\d+)-\d+$/

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export async function listNamespaces (tools: NetnsTools): Promise<string[]> {
  const out = await sh(tools.ip, ['netns', 'list'])
  return out.split('\n').map(line => line.split(' ')[0] ?? '').filter(name => name !== '')
}

export async function listLinks (tools: NetnsTools): Promise<string[]> {
  const links = JSON.parse(await sh(tools.ip, ['-j', 'link', 'show'])) as Array<{ ifname: string }>
  return links.map(l => l.ifname)
}

/**
 * Removes the namespaces and root links of runs whose process is gone,
 * killing any node still running inside them first (an orphaned node would
 * keep its namespace alive). Another live run's are never touched.
 */
export async function sweepStale (tools: NetnsTools, log: (line: string) => void): Promise<void> {
  const swept: string[] = []
  for (const ns of await listNamespaces(tools)) {
    const m = STALE_NS.exec(ns)
    if (m === null || alive(Number(m[1]))) continue
    const pids = (await sh(tools.ip, ['netns', 'pids', ns]).catch(() => '')).split('\n').filter(p => /^\d+$/.test(p))
    for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
    await sh(tools.ip, ['netns', 'delete', ns]).catch(() => {})
    swept.push(ns)
  }
  for (const link of await listLinks(tools)) {
    const m = STALE_LINK.exec(link)
    if (m === null || alive(Number(m[1]))) continue
    await sh(tools.ip, ['link', 'delete', link]).catch(() => {})
    swept.push(link)
  }
  if (swept.length > 0) log(`netns: removed what dead runs left behind: ${swept.join(', ')}`)
}

function toInt (ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0) >>> 0
}

/** Whether two IPv4 prefixes share an address. */
export function overlaps (a: string, b: string): boolean {
  const [aip = '', alen = '32'] = a.split('/')
  const [bip = '', blen = '32'] = b.split('/')
  const len = Math.min(Number(alen), Number(blen))
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0
  return ((toInt(aip) & mask) >>> 0) === ((toInt(bip) & mask) >>> 0)
}

/**
 * A /24 in 10.64.0.0-10.223.255.255 that no route of the root namespace
 * touches (other runs' subnets included), starting from a point drawn from
 * the pid so concurrent runs start apart. Returns the first three octets.
 */
export async function freeSubnet (tools: NetnsTools): Promise<string> {
  const routes = JSON.parse(await sh(tools.ip, ['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{ dst: string }>
  const taken = routes.map(r => r.dst).filter(dst => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(dst) && dst.split('/')[1] !== '0')
  const span = 160 * 256
  const start = (process.pid * 7919 + runs * 104_729) % span
  for (let k = 0; k < span; k++) {
    const c = (start + k) % span
    const subnet = `10.${64 + Math.floor(c / 256)}.${c % 256}`
    if (!taken.some(dst => overlaps(`${subnet}.0/24`, dst))) return subnet
  }
  throw new Error('no free /24 in 10.64.0.0-10.223.255.255 for the simulated network')
}
