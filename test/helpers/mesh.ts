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

/** Each node trusts the other (through the API, as an admin would). */
export async function link (a: TestNode, b: TestNode): Promise<void> {
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const res = await x.node.api.inject({ method: 'POST', url: '/peers', headers: x.admin, payload: { multiaddr: addressOf(y) } })
    if (res.statusCode !== 201) throw new Error(`peer add: ${res.statusCode} ${res.body}`)
  }
}

/** Every record key and its heads on a node, for convergence checks. */
export async function stateOf (n: TestNode): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const kind of ['user', 'dataset', 'model', 'report']) {
    for await (const [key, meta] of n.node.docs.scan(`${kind}/`)) out.set(key, [...meta.heads].sort().join(','))
  }
  return out
}

export async function converged (nodes: TestNode[]): Promise<boolean> {
  const states = await Promise.all(nodes.map(stateOf))
  const first = JSON.stringify([...(states[0] as Map<string, string>)].sort())
  return states.every(s => JSON.stringify([...s].sort()) === first)
}
