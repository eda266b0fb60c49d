import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { TlsFiles } from '../config.ts'
import { DwError } from '../errors.ts'

/** The HTTP API's certificate (chain) and key, read and checked. */
export interface TlsMaterial { cert: string, key: string }

async function readPem (file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err: any) {
    throw new DwError('CONFIG_INVALID', `cannot read the TLS ${what} ${file}: ${err?.code ?? err?.message ?? String(err)}`, { cause: err })
  }
}

/**
 * Reads the certificate and key for HTTPS. A wrong file fails the start
 * with its name, rather than every client later with a handshake error.
 * Relative paths are taken from `dataDir`.
 */
export async function loadTls (files: TlsFiles, dataDir: string, warn: (message: string) => void): Promise<TlsMaterial> {
  const certFile = resolve(dataDir, files.cert)
  const keyFile = resolve(dataDir, files.key)
  const [cert, key] = await Promise.all([readPem(certFile, 'certificate'), readPem(keyFile, 'key')])
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (err) {
    throw new DwError('CONFIG_INVALID', `${certFile} is not a PEM certificate`, { cause: err })
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new DwError('CONFIG_INVALID', `${keyFile} is not an unencrypted PEM private key`, { cause: err })
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new DwError('CONFIG_INVALID', `the TLS key ${keyFile} does not belong to the certificate ${certFile}`)
  }
  if (Date.parse(x509.validTo) < Date.now()) warn(`the TLS certificate ${certFile} expired on ${x509.validTo}; clients will refuse it`)
  if (((await stat(keyFile)).mode & 0o077) !== 0) warn(`the TLS key ${keyFile} is readable by other users; chmod 600 it`)
  return { cert, key }
}
