import { randomBytes } from 'node:crypto'
import { DwError } from '../errors.ts'

/** Reads one line from the terminal without echoing it. */
export async function promptHidden (question: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(question)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  return await new Promise<string>((resolve, reject) => {
    let value = ''
    const finish = (err?: Error): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (err !== undefined) reject(err)
      else resolve(value)
    }
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish()
        if (ch === '\u0003' || ch === '\u0004') return finish(new DwError('INVALID_INPUT', 'cancelled'))
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('')
        else if (ch >= ' ') value += ch
      }
    }
    stdin.on('data', onData)
  })
}

export interface PasswordSource {
  /** Environment variable checked first. */
  env: string
  /** What the prompt asks for, e.g. "admin password". */
  label: string
  /** Ask twice: for a new password. */
  confirm?: boolean
}

/** A password from the environment, else a hidden prompt on a terminal, else a clear error. */
export async function readPassword (source: PasswordSource): Promise<string> {
  const fromEnv = process.env[source.env]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  if (process.stdin.isTTY !== true) {
    throw new DwError('INVALID_INPUT', `no ${source.label}: set ${source.env} or run dw in a terminal to be asked`)
  }
  const first = await promptHidden(`${source.label[0]?.toUpperCase()}${source.label.slice(1)}: `)
  if (source.confirm === true && await promptHidden('Again, to confirm: ') !== first) {
    throw new DwError('INVALID_INPUT', 'the two passwords differ')
  }
  return first
}

/** A random password that meets the policy, for printing once. */
export function generatePassword (): string {
  return randomBytes(18).toString('base64url')
}
