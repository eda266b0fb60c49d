import { initNode, startNode, type RunningNode } from '../../src/node.ts'
import type { NodeConfig } from '../../src/config.ts'
import { tempDir } from './tmp.ts'

export const ADMIN_PASSWORD = 'correct horse battery'
/**
 * Test nodes hash passwords at the least cost dw accepts (scrypt at 16 MiB,
 * config.json login.passwordCost): the suite sets and checks thousands, and
 * at the default each costs about a second of CPU on these machines.
 */
export const TEST_LOGIN = Object.freeze({ passwordCost: 14 })

export interface TestNode {
  node: RunningNode
  dataDir: string
  /** Logs in through the API and returns the bearer header. */
  login: (username: string, password: string) => Promise<{ authorization: string }>
  admin: { authorization: string }
}

type T = { teardown: (fn: () => Promise<void> | void) => void }

/** Tests whose first node has founded a mesh: the nodes a test starts after it join that mesh. */
const founded = new WeakSet<object>()

/**
 * A real node (LevelDB, blob store, HTTP on a random port) in a temp
 * directory. The first node a test starts founds a mesh and the rest join
 * it (`link` then adds them to its roster); `found: true` starts another mesh.
 */
export async function startTestNode (t: T, options: { dataDir?: string, found?: boolean, join?: boolean, files?: NodeConfig['files'], login?: NodeConfig['login'], warn?: (message: string) => void } = {}): Promise<TestNode> {
  let dataDir = options.dataDir
  if (dataDir === undefined) {
    dataDir = await tempDir(t, 'dw-node-')
    const join = options.join ?? (options.found !== true && founded.has(t))
    if (!join) founded.add(t)
    // Fast redial, so a healed link is noticed within a second. Background
    // copying is off unless a test asks for it: most tests are about where
    // bytes go on demand, and a copy arriving on its own would change that.
    const files = options.files ?? { copy: false }
    await initNode({ dataDir, adminPassword: ADMIN_PASSWORD, login: options.login ?? TEST_LOGIN, http: { host: '127.0.0.1', port: 0 }, listen: ['/ip4/127.0.0.1/tcp/0'], sync: { minMs: 100, maxMs: 800 }, join, files })
  }
  const node = await startNode({ dataDir, ...(options.warn === undefined ? {} : { warn: options.warn }) })
  t.teardown(async () => { await node.stop() })
  const login = async (username: string, password: string): Promise<{ authorization: string }> => {
    const res = await node.api.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })
    if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`)
    return { authorization: `Bearer ${res.json().token as string}` }
  }
  return { node, dataDir, login, admin: await login('admin', ADMIN_PASSWORD) }
}

/** Creates a member account and returns its id and bearer header. */
export async function addMember (n: TestNode, username: string): Promise<{ id: string, headers: { authorization: string } }> {
  const res = await n.node.api.inject({ method: 'POST', url: '/users', headers: n.admin, payload: { username, password: 'member password', role: 'member' } })
  if (res.statusCode !== 201) throw new Error(`add member: ${res.statusCode} ${res.body}`)
  return { id: res.json().id, headers: await n.login(username, 'member password') }
}
