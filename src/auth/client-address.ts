import { isIPv4, isIPv6 } from 'node:net'

/**
 * The key login limits count a client under: its IPv4 address, or the /64
 * network of an IPv6 address. One IPv6 host is usually handed a whole /64,
 * so keying on the full address would give an attacker 2^64 fresh budgets.
 * IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports)
 * counts as the IPv4 address it carries. Anything unparsable (a socket
 * already closed reports no address) shares one key.
 */
export function clientKeyOf (ip: unknown): string {
  if (typeof ip !== 'string') return 'unknown'
  const address = ip.split('%')[0] as string // drop an IPv6 zone such as %eth0
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1] as string
  if (isIPv4(address)) return address
  if (isIPv6(address)) return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`
  return 'unknown'
}

/** The eight 16-bit groups of a valid IPv6 address, without leading zeros. */
function ipv6Groups (address: string): string[] {
  const [head = '', tail] = address.split('::')
  const split = (part: string): string[] => part === '' ? [] : part.split(':').flatMap(g => g.includes('.') ? ['0', '0'] : [g])
  const front = split(head)
  const back = tail === undefined ? [] : split(tail)
  const groups = [...front, ...Array<string>(8 - front.length - back.length).fill('0'), ...back]
  return groups.map(g => parseInt(g, 16).toString(16))
}
