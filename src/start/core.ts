import { join } from 'node:path'
import { openDb, jsonSublevel, type Db } from '../db.ts'
import { DocStore } from '../crdt/doc-store.ts'
import { summarise, type RecordSummary } from '../crdt/summary.ts'
import { BlobRefs } from '../crdt/blob-refs.ts'
import { FsBlobStore } from '../blobs/fs-store.ts'
import { S3BlobStore } from '../blobs/s3-store.ts'
import { resolveS3BlobStoreOptions } from '../blobs/s3-config.ts'
import type { BlobStore } from '../blobs/blob-store.ts'
import { SessionStore, type SessionRecord } from '../auth/sessions.ts'
import { LoginGuard, parseLoginLimits } from '../auth/login-guard.ts'
import { scryptParams } from '../auth/passwords.ts'
import { AccountsSeen } from '../warehouse/accounts-seen.ts'
import { Users } from '../warehouse/users.ts'
import { Records } from '../warehouse/records.ts'
import type { NodeConfig } from '../config.ts'
import { DwError } from '../errors.ts'
import type { PrivateKey } from '@libp2p/interface'
import { TrustGate } from '../trust/gate.ts'
import { ChangeSigner } from '../trust/signatures.ts'
import { Nodes } from '../warehouse/nodes.ts'

/** A node's stores and the domain objects over them: everything `dw init` and `dw start` share. */
export interface Core { db: Db, docs: DocStore<RecordSummary>, blobs: BlobStore, refs: BlobRefs, users: Users, records: Records, trust: TrustGate, nodes: Nodes }

async function openDbClearly (dataDir: string): Promise<Db> {
  try {
    return await openDb(join(dataDir, 'db'))
  } catch (err: any) {
    if (err?.cause?.code === 'LEVEL_LOCKED' || /lock/i.test(String(err?.cause?.message ?? err?.message))) {
      throw new DwError('CONFIG_INVALID', `another dw node is already running on ${dataDir}`, { cause: err })
    }
    throw err
  }
}

/** The blob store a node's config names. */
export async function openBlobStore (dataDir: string, config: NodeConfig['blobs']): Promise<BlobStore> {
  if (config.type === 's3') return await S3BlobStore.open(resolveS3BlobStoreOptions(config))
  return await FsBlobStore.open(join(dataDir, 'blobs'))
}

/** Opens the blob store, then LevelDB (closing the blob store again if that fails). */
export async function openCore (dataDir: string, blobsConfig: NodeConfig['blobs'], identity: { key: PrivateKey, peerId: string }, loginLimits?: NodeConfig['login'], options: { renewEpoch?: boolean } = {}): Promise<Core> {
  // Before anything opens: a bad setting should not leave a store locked.
  const limits = parseLoginLimits(loginLimits)
  const loginGuard = new LoginGuard(limits)
  // The blob store first: a wrong S3 setting should fail before LevelDB is locked.
  const blobs = await openBlobStore(dataDir, blobsConfig)
  const db = await openDbClearly(dataDir).catch(async (err: unknown) => { await blobs.close(); throw err })
  const refs = new BlobRefs(jsonSublevel<string>(db, 'blobrefs'))
  const seen = await AccountsSeen.open(jsonSublevel<number>(db, 'users-seen'))
  const docs = await DocStore.open(db, { summarise, indexes: [refs.index, seen.index], renewEpoch: options.renewEpoch })
  // Every change to a replicated document is signed by this node and
  // judged by the permission rules, whichever way it arrives.
  const trust = await TrustGate.open({
    self: identity.peerId,
    signer: new ChangeSigner(identity.key),
    state: jsonSublevel<unknown>(db, 'trust'),
    headsOf: async key => (await docs.meta(key))?.heads
  })
  docs.admitWith(trust)
  const sessions = new SessionStore(jsonSublevel<SessionRecord>(db, 'sessions'))
  const users = await Users.open(docs, sessions, loginGuard, trust.localAdminId, seen, scryptParams(limits.passwordCost))
  return { db, docs, blobs, refs, users, records: new Records(docs), trust, nodes: new Nodes(docs, trust) }
}
