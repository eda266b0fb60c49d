// When this node first saw an account decides who keeps a contested
// username here (src/crdt/username-claims.ts). The number was written after
// the account's commit, fire-and-forget: a node killed in between came back
// with the account but not its number, and numbered it again by creation
// time, which the account's creator chose. Now the number is in the same
// atomic write as the account's first commit on this node.
import t from 'tap'
import { trustNode } from '../helpers/trust-fixture.ts'

// A batch on the root database names each key with its sublevel's prefix.
interface WriteOp { type: string, key: unknown }

t.test("an account's first-seen number is written in the batch that first stores it", async t => {
  const F = await trustNode(t, 'F')
  await F.core.nodes.found('F')
  const batches: WriteOp[][] = []
  F.core.db.on('write', (ops: WriteOp[]) => { batches.push(ops) })

  const made = []
  for (const username of ['alice', 'bob', 'carol']) {
    made.push(await F.core.users.create(F.admin, { username, password: 'correct horse battery', role: 'member' }))
  }
  await F.core.users.update(F.admin, String(made[0]?.id), { displayName: 'Alice' })

  for (const user of made) {
    const key = `user/${String(user.id)}`
    const first = batches.find(ops => ops.some(op => op.type === 'put' && op.key === `!meta!${key}`))
    t.ok(first, `${key}: its first commit was seen`)
    const numbered = first?.some(op => op.type === 'put' && op.key === `!users-seen!${String(user.id)}`)
    t.ok(numbered, `${key}: numbered in that same batch`)
  }
  const numberings = batches.flat().filter(op => String(op.key).startsWith('!users-seen!'))
  t.equal(numberings.length, 3, 'each account numbered once: an update to a known account writes no number')
})
