import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Absolute paths of the host tools `--netns` drives. */
export interface NetnsTools { ip: string, tc: string, nft: string }

export type Preflight = { ok: true, tools: NetnsTools } | { ok: false, problems: string[] }

const INSTALL = 'apt-get install nftables iproute2'

/**
 * Root shells usually have the sbin directories on their PATH, but `npm`,
 * `sudo` and CI runners do not always: look there too.
 */
function findTool (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  for (const dir of dirs) {
    if (dir === '') continue
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  return undefined
}

/**
 * What `--netns` needs before it touches anything: root (namespaces,
 * nftables and qdiscs all need CAP_NET_ADMIN) and the `ip`, `tc` and `nft`
 * commands. Kernel support shows up as a clear error during set-up.
 */
export function netnsPreflight (): Preflight {
  const problems: string[] = []
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    problems.push('it must run as root (network namespaces, nftables and tc need CAP_NET_ADMIN)')
  }
  const found = { ip: findTool('ip'), tc: findTool('tc'), nft: findTool('nft') }
  const packages: Record<string, string> = { ip: 'iproute2', tc: 'iproute2', nft: 'nftables' }
  for (const [name, path] of Object.entries(found)) {
    if (path === undefined) problems.push(`\`${name}\` is not installed (Debian package ${packages[name] ?? name})`)
  }
  if (problems.length > 0 || found.ip === undefined || found.tc === undefined || found.nft === undefined) return { ok: false, problems }
  return { ok: true, tools: { ip: found.ip, tc: found.tc, nft: found.nft } }
}

/** The message `--netns` exits with when the preflight fails. */
export function preflightMessage (problems: string[]): string {
  const lines = ['--netns cannot run here:', ...problems.map(p => `  - ${p}`)]
  if (problems.some(p => p.includes('not installed'))) lines.push(`install them with: ${INSTALL}`)
  lines.push('(without --netns the simulator runs unprivileged, through TCP proxies)')
  return lines.join('\n')
}
