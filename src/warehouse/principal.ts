import { DwError } from '../errors.ts'

/** Who is making a request, as the API resolved it from the bearer token. */
export interface Principal {
  userId: string
  username: string
  role: 'admin' | 'member'
}

export function requireAdmin (who: Principal): void {
  if (who.role !== 'admin') throw new DwError('FORBIDDEN', 'only an admin can do this')
}

/** Members edit what they own; admins edit everything. */
export function requireOwnerOrAdmin (who: Principal, owner: unknown, what: string): void {
  if (who.role !== 'admin' && owner !== who.userId) {
    throw new DwError('FORBIDDEN', `only the owner of this ${what} or an admin can change it`)
  }
}

export function actorOf (who: Principal): { userId: string, at: string } {
  return { userId: who.userId, at: new Date().toISOString() }
}
