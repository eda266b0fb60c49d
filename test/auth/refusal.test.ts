import t from 'tap'
import { refusal } from '../../src/auth/refusal.ts'

t.test('a refusal is a TOO_MANY_ATTEMPTS DwError without a stack trace', async t => {
  const limit = Error.stackTraceLimit
  const err = refusal('busy', { retryAfterSeconds: 3, limit: 'client' })
  t.match(err, { name: 'DwError', code: 'TOO_MANY_ATTEMPTS', message: 'busy', details: { retryAfterSeconds: 3, limit: 'client' } })
  t.equal(err.stack?.split('\n').length, 1, 'no frames captured')
  t.equal(Error.stackTraceLimit, limit, 'the stack trace limit is restored')
  t.ok((new Error('other').stack?.split('\n').length ?? 0) > 1, 'other errors keep their stacks')
})
