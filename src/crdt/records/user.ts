import { ensureMap, initBase, patchMap, touch, type Actor } from './common.ts'

export const Roles = ['admin', 'member'] as const
export type Role = typeof Roles[number]

export interface UserInput {
  username: string
  email?: string
  displayName?: string
  role: Role
  passwordHash: string
}

export interface UserPatch {
  username?: string
  email?: string
  displayName?: string
  role?: Role
  passwordHash?: string
  disabled?: boolean
  preferences?: Record<string, unknown>
  /** Peer ids of contributor sites that may act for this account (full sites always may). */
  sites?: string[]
}

/** Usernames compare case-insensitively: "Alice" and "alice" are one name. */
export function normaliseUsername (username: string): string {
  return username.normalize('NFKC').toLowerCase()
}

export function initUser (doc: any, id: string, input: UserInput, actor: Actor): void {
  initBase(doc, 'user', id, actor)
  doc.username = input.username
  doc.email = input.email ?? ''
  doc.displayName = input.displayName ?? input.username
  doc.role = input.role
  doc.passwordHash = input.passwordHash
  doc.disabled = false
  doc.preferences = {}
}

export function patchUser (doc: any, patch: UserPatch, actor: Actor): void {
  for (const field of ['username', 'email', 'displayName', 'role', 'passwordHash', 'disabled'] as const) {
    const value = patch[field]
    if (value !== undefined && value !== doc[field]) doc[field] = value
  }
  if (patch.preferences !== undefined) patchMap(ensureMap(doc, 'preferences'), patch.preferences)
  if (patch.sites !== undefined) {
    const sites = ensureMap(doc, 'sites')
    for (const peer of Object.keys(sites)) if (!patch.sites.includes(peer)) delete sites[peer]
    for (const peer of patch.sites) if (sites[peer] === undefined) sites[peer] = true
  }
  touch(doc, actor)
}
