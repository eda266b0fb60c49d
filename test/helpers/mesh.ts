import { TcpProxy } from './tcp-proxy.ts'
import type { TestNode } from './node.ts'

/** Polls `check` until it returns true or `ms` pass; every wait in the tests is bounded. */
export async function eventually (check: () => Promise<boolean> | boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** The address another node uses to add `n` (loopback, with its peer id). */
export function addressOf (n: TestNode): string {
  const addr = n.node.addresses().find(a => a.includes('/ip4/127.0.0.1/'))
  if (addr === undefined) throw new Error('node has no loopback address')
  return addr
}

/**
 * Each node trusts the other (through the API, as an admin would). A full
 * node adds the other to the mesh roster as `role` (default full); the link
 * is ready once both hold the roster with both in it.
 */
export async function link (a: TestNode, b: TestNode, role: 'full' | 'contributor' | 'read-only' = 'full'): Promise<void> {
  for (const [x, y] of [[a, b], [b, a]] as const) {
    await addPeer(x, addressOf(y), role)
  }
  await enrolled([a, b])
}

/** `POST /peers` as an admin; on a full node the peer joins the roster as `role` unless it is in it already. */
export async function addPeer (x: TestNode, multiaddr: string, role: 'full' | 'contributor' | 'read-only' = 'full'): Promise<void> {
  const full = await x.node.nodes.standing(x.node.peerId) === 'full'
  const res = await x.node.api.inject({ method: 'POST', url: '/peers', headers: x.admin, payload: full ? { multiaddr, role } : { multiaddr } })
  if (res.statusCode !== 201) throw new Error(`peer add: ${res.statusCode} ${res.body}`)
}

/** Waits until every node holds a roster that names all of them. */
export async function enrolled (nodes: TestNode[], ms = 20_000): Promise<void> {
  await eventually(async () => {
    for (const n of nodes) {
      const listed = new Set((await n.node.nodes.list()).map(e => e.peerId))
      if (!nodes.every(m => listed.has(m.node.peerId))) return false
    }
    return true
  }, ms, 'every node in the roster on every node')
}

/**
 * Links two nodes through a TCP proxy per direction, so the test can cut
 * and heal the link. Returns the partition controls.
 */
export async function linkThroughProxies (t: { teardown: (fn: () => Promise<void>) => void }, a: TestNode, b: TestNode): Promise<{ cut: () => void, heal: () => void }> {
  const port = (n: TestNode): number => Number(/\/tcp\/(\d+)\//.exec(addressOf(n))?.[1])
  const toB = await TcpProxy.start(port(b))
  const toA = await TcpProxy.start(port(a))
  t.teardown(async () => { await toB.close(); await toA.close() })
  for (const [x, y, proxy] of [[a, b, toB], [b, a, toA]] as const) {
    await addPeer(x, `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${y.node.peerId}`)
  }
  await enrolled([a, b])
  return {
    cut: () => { toB.cut(); toA.cut() },
    heal: () => { toB.heal(); toA.heal() }
  }
}

/** Every replicated record key and its heads on a node (local-only documents excluded), for convergence checks. */
export async function stateOf (n: TestNode): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const kind of ['user', 'dataset', 'model', 'report', 'mesh']) {
    for await (const [key, meta] of n.node.docs.scan(`${kind}/`)) {
      if (meta.local !== true) out.set(key, [...meta.heads].sort().join(','))
    }
  }
  return out
}

export async function converged (nodes: TestNode[]): Promise<boolean> {
  const states = await Promise.all(nodes.map(stateOf))
  const first = JSON.stringify([...(states[0] as Map<string, string>)].sort())
  return states.every(s => JSON.stringify([...s].sort()) === first)
}
