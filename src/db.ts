import { Level } from 'level'
import type { AbstractSublevel } from 'abstract-level'

/**
 * The node's one LevelDB. Every subsystem gets its own sublevel (namespace)
 * from the composition root; nobody opens the database a second time.
 */
export type Db = Level<string, Uint8Array>

/** A namespace inside the node's database with string keys. */
export type Sublevel<V> = AbstractSublevel<Db, string | Uint8Array | Buffer, string, V>

export async function openDb (location: string): Promise<Db> {
  const db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  return db
}

export function jsonSublevel<V> (db: Db, name: string): Sublevel<V> {
  return db.sublevel<string, V>(name, { keyEncoding: 'utf8', valueEncoding: 'json' })
}

export function binarySublevel (db: Db, name: string): Sublevel<Uint8Array> {
  return db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' })
}
