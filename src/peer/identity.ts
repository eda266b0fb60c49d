import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { DwError } from '../errors.ts'

/** File name of the node's private key inside its data directory. */
export const IDENTITY_FILE = 'identity.key'

/**
 * Load the node's Ed25519 identity from `<dataDir>/identity.key`, creating
 * and persisting a new one when the file does not exist yet.
 *
 * The file holds the protobuf-marshalled private key, mode 0600. It is
 * written to a temporary file, fsynced and renamed, so a crash never leaves a
 * half-written key behind (a lost key means a new peer id, and every other
 * site would have to trust this node again).
 */
export async function loadOrCreateIdentity (dataDir: string): Promise<PrivateKey> {
  const path = join(dataDir, IDENTITY_FILE)
  const existing = await readKeyFile(path)
  if (existing !== undefined) return existing

  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true })
  await writeAtomically(path, privateKeyToProtobuf(key))
  return key
}

/** The string form of the peer id that `key` proves (`12D3KooW...`). */
export function peerIdOf (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}

/**
 * The peer id of the node whose data directory is `dataDir`, read from its
 * key without changing anything (the CLI names a stopped node by it);
 * undefined when there is no readable key.
 */
export async function storedPeerId (dataDir: string): Promise<string | undefined> {
  try {
    return peerIdOf(privateKeyFromProtobuf(await readFile(join(dataDir, IDENTITY_FILE))))
  } catch {
    return undefined
  }
}

async function readKeyFile (path: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  // A key restored from backup may come back world-readable.
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600)
  try {
    const key = privateKeyFromProtobuf(bytes)
    if (key.type !== 'Ed25519') throw new Error(`expected an Ed25519 key, found ${key.type}`)
    return key
  } catch (err) {
    // Never silently replace a damaged key: that would change the node's
    // identity behind the admin's back.
    throw new DwError('CONFIG_INVALID', `identity key ${path} is unreadable; restore it from backup or remove it to create a new identity`, { cause: err })
  }
}

async function writeAtomically (path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const handle = await open(tmp, 'wx', 0o600)
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    // The umask can only clear bits, but be explicit: this file is a secret.
    await chmod(tmp, 0o600)
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  // The rename is only durable once the directory entry is on disk.
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}
