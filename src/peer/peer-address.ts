import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DwError } from '../errors.ts'

/** Transports a peer address may use: a host (IP or DNS name), then TCP. */
const HOST_PROTOCOLS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6'])
const EXAMPLE = '/ip4/10.1.2.3/tcp/4001/p2p/12D3KooW...'

/**
 * Validate what an admin typed as a peer address and return the peer id and
 * canonical multiaddr. Messages say what is wrong and what is expected.
 */
export function parsePeerAddress (input: string, self?: string): { peerId: string, addr: string } {
  if (typeof input !== 'string') throw bad('the peer address must be a string')
  const text = stripQuotes(input.trim())
  if (text === '') throw bad(`the peer address is empty; expected something like ${EXAMPLE}`)
  if (/\s/.test(text)) throw bad(`the peer address "${text}" contains spaces; expected one multiaddr like ${EXAMPLE}`)
  if (!text.startsWith('/')) {
    if (looksLikePeerId(text)) throw bad(`"${text}" is a bare peer id; give the full address, e.g. /ip4/<host>/tcp/<port>/p2p/${text}`)
    throw bad(`"${text}" is not a multiaddr (it must start with "/"); expected something like ${EXAMPLE}`)
  }
  let components
  try {
    components = multiaddr(text.replace(/\/+$/, '')).getComponents()
  } catch (err) {
    throw bad(`"${text}" is not a valid multiaddr: ${(err as Error).message}`, err)
  }
  const last = components.at(-1)
  if (last?.name !== 'p2p' || last.value === undefined) {
    throw bad(`"${text}" does not end in /p2p/<peerId>; add the peer id the remote node printed at init, e.g. ${text}/p2p/12D3KooW...`)
  }
  const peerId = parsePeerId(last.value)
  if (components.length === 1) throw bad(`"${text}" has a peer id but no network address; expected /ip4/<host>/tcp/<port>/p2p/${peerId}`)
  const [host, port] = components
  if (components.length !== 3 || host === undefined || !HOST_PROTOCOLS.has(host.name) || port?.name !== 'tcp') {
    throw bad(`"${text}" is not a TCP address; expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<peerId>`)
  }
  if (host.value === '0.0.0.0' || host.value === '::') {
    throw bad(`"${text}" uses the wildcard address ${host.value}, which only means "listen everywhere"; use the remote node's real IP or host name`)
  }
  if (port.value === '0') throw bad(`"${text}" uses port 0; use the port the remote node listens on`)
  if (self !== undefined && peerId === self) throw bad(`${peerId} is this node's own peer id; add the other site's address instead`)
  return { peerId, addr: `/${host.name}/${host.value}/tcp/${port.value}/p2p/${peerId}` }
}

export function parsePeerId (value: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw bad('a peer id is required')
  try {
    return peerIdFromString(value.trim()).toString()
  } catch (err) {
    throw bad(`"${value}" is not a valid peer id (expected something like 12D3KooW... as printed by dw init)`, err)
  }
}

export function parsePeerName (name: string): string {
  const clean = typeof name === 'string' ? name.trim() : ''
  // eslint-disable-next-line no-control-regex
  if (clean === '' || clean.length > 64 || /[\u0000-\u001f\u007f]/.test(clean)) {
    throw bad('a peer name must be 1 to 64 printable characters')
  }
  return clean
}

export function withPeerId (addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}

function looksLikePeerId (text: string): boolean {
  try {
    peerIdFromString(text)
    return true
  } catch {
    return false
  }
}

function stripQuotes (text: string): string {
  const match = /^(["'`\u201c\u2018])(.*)(["'`\u201d\u2019])$/s.exec(text)
  return match?.[2]?.trim() ?? text
}

function bad (message: string, cause?: unknown): DwError {
  return new DwError('INVALID_INPUT', message, { cause })
}

/**
 * Validate an address to announce instead of the listen addresses (a NAT's
 * public address, a port forward, a DNS name): a host, then TCP, with a
 * real port; `/p2p/<peerId>` may end it but must then be this node's own
 * id. Returns the address without its peer id (libp2p appends it).
 */
export function parseAnnounceAddress (input: string, self?: string): string {
  if (typeof input !== 'string') throw bad('an announce address must be a string')
  const text = input.trim()
  const example = '/ip4/203.0.113.7/tcp/4001 or /dns4/site-a.example.org/tcp/4001'
  let components
  try {
    components = multiaddr(text.replace(/\/+$/, '')).getComponents()
  } catch (err) {
    throw bad(`"${text}" is not a valid multiaddr (expected e.g. ${example})`, err)
  }
  const last = components.at(-1)
  if (last?.name === 'p2p') {
    const peerId = parsePeerId(last.value ?? '')
    if (self !== undefined && peerId !== self) throw bad(`"${text}" names peer ${peerId}, not this node (${self}); announce this node's own address, or leave /p2p/... off`)
    components = components.slice(0, -1)
  }
  const [host, port] = components
  if (components.length !== 2 || host === undefined || !HOST_PROTOCOLS.has(host.name) || port?.name !== 'tcp') {
    throw bad(`"${text}" is not a TCP address other sites can dial; expected e.g. ${example}`)
  }
  if (host.value === '0.0.0.0' || host.value === '::') throw bad(`"${text}" uses the wildcard address ${host.value}; announce the address other sites reach this node at`)
  if (port.value === '0') throw bad(`"${text}" uses port 0; announce the port other sites reach this node at`)
  return `/${host.name}/${host.value}/tcp/${port.value}`
}
