// The sync wire takes document keys of the replicated kinds only
// (src/crdt/keys.ts owns the list): a key of any other kind ends the stream.
import t from 'tap'
import { parsePullerMessage, parseServerMessage } from '../../src/peer/sync/messages.ts'
import { ReplicatedKinds } from '../../src/crdt/keys.ts'

const ID = '0190a3b4-1234-7abc-8def-0123456789ab'
const want = (key: string): unknown => ({ t: 'want', batch: 0, items: [[key, []]] })
const docs = (key: string): unknown => ({ t: 'docs', batch: 0, last: true, items: [[key, new Uint8Array(0), new Uint8Array(0)]] })

t.test('a key of every replicated kind is taken', async t => {
  for (const kind of ReplicatedKinds) {
    t.same(parsePullerMessage(want(`${kind}/${ID}`)), { t: 'want', batch: 0, items: [[`${kind}/${ID}`, []]] }, kind)
    t.equal(parseServerMessage(docs(`${kind}/${ID}`)).t, 'docs', kind)
  }
})

t.test('a key of any other kind, or not shaped <kind>/<uuid>, is refused', async t => {
  for (const key of [`widget/${ID}`, `users/${ID}`, `User/${ID}`, `mesh|node/${ID}`, `/${ID}`, ID, `user/${ID}x`, `user/${ID.toUpperCase()}`, `xuser/${ID}`, `user/${ID}\n`, 'user/']) {
    t.throws(() => parsePullerMessage(want(key)), { code: 'INVALID_MESSAGE' }, JSON.stringify(key))
    t.throws(() => parseServerMessage(docs(key)), { code: 'INVALID_MESSAGE' }, JSON.stringify(key))
  }
})

t.test('heads arrive as 64 hex characters or as 32 bytes (hbin), and read the same', async t => {
  const hex = 'ab'.repeat(32)
  const bytes = new Uint8Array(32).fill(0xab)
  const offer = (heads: unknown[]): unknown => ({ t: 'offer', batch: 0, through: 1, items: [[`dataset/${ID}`, heads]] })
  t.same(parseServerMessage(offer([bytes])), parseServerMessage(offer([hex])), 'the same head either way')
  t.same(parsePullerMessage({ t: 'want', batch: 0, items: [[`dataset/${ID}`, [bytes]]] }), { t: 'want', batch: 0, items: [[`dataset/${ID}`, [hex]]] })
  for (const bad of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0), 'AB'.repeat(32), 'ab'.repeat(31), 7]) {
    t.throws(() => parseServerMessage(offer([bad])), { code: 'INVALID_MESSAGE' }, `refused: ${String(bad)}`)
  }
})
