import { createWriteStream } from 'node:fs'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { AuditLog } from '../audit.ts'
import type { Sublevel } from '../db.ts'
import type { Startable } from '../lifecycle.ts'
import { verifyBackup } from './restore.ts'
import type { BackupSchedule } from './schedule.ts'
import { startBackup, type BackupSource, type RunningBackup } from './write-backup.ts'

/** The latest backup this node made, kept so `dw status` can show it. */
export interface LastBackup {
  at: string
  ok: boolean
  trigger: 'schedule' | 'request'
  durationMs: number
  path?: string
  bytes?: number
  records?: number
  blobs?: number
  error?: string
}

export interface BackupStatus { last?: LastBackup, schedule?: BackupSchedule & { next: string }, running: boolean }

const ARCHIVE = /^dw-backup-.+\.tar$/

/** A name that sorts by time and says whose backup it is. */
export function archiveName (nodeName: string, at: Date): string {
  const safe = nodeName.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 60) || 'node'
  return `dw-backup-${safe}-${at.toISOString().replace(/[:.]/g, '-')}.tar`
}

/**
 * Backups of a running node: streamed to whoever asks (`GET /backup`,
 * `dw backup`), and written on a schedule into a directory, each verified
 * after writing, the oldest pruned beyond `keep`. The last result is kept
 * in the store and shown by `dw status`.
 */
export class Backups implements Startable {
  readonly #source: BackupSource & { flush: () => Promise<void> }
  readonly #state: Sublevel<LastBackup>
  readonly #audit: AuditLog
  readonly #schedule: BackupSchedule | undefined
  #timer: NodeJS.Timeout | undefined
  #next: number | undefined
  #running = 0
  #scheduled: Promise<unknown> | undefined
  #stopped = false
  /** Aborts a scheduled backup in progress when the node stops: it is tried again at the next start. */
  readonly #halt = new AbortController()

  constructor (source: BackupSource & { flush: () => Promise<void> }, state: Sublevel<LastBackup>, audit: AuditLog, schedule: BackupSchedule | undefined) {
    this.#source = source
    this.#state = state
    this.#audit = audit
    this.#schedule = schedule
  }

  async start (): Promise<void> {
    if (this.#schedule === undefined) return
    const last = await this.last()
    // Never backed up: soon, rather than a whole interval after every restart.
    const due = last === undefined ? Date.now() + Math.min(this.#schedule.everyMs, 60_000) : Date.parse(last.at) + this.#schedule.everyMs
    this.#arm(due)
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#halt.abort()
    await this.#scheduled?.catch(() => {})
  }

  get blobStore (): 'fs' | 's3' { return this.#source.blobStore }

  async last (): Promise<LastBackup | undefined> {
    return await this.#state.get('last')
  }

  async status (): Promise<BackupStatus> {
    const last = await this.last()
    return {
      ...(last === undefined ? {} : { last }),
      ...(this.#schedule === undefined || this.#next === undefined ? {} : { schedule: { ...this.#schedule, next: new Date(this.#next).toISOString() } }),
      running: this.#running > 0
    }
  }

  /** A backup as a stream (for `GET /backup`); its outcome is recorded once the reader has it all, or gave up. */
  async stream (options: { includeFiles: boolean }): Promise<RunningBackup> {
    const began = Date.now()
    await this.#source.flush()
    this.#running += 1
    try {
      const backup = await startBackup(this.#source, options)
      backup.done.then(
        async summary => { await this.#record({ at: new Date(began).toISOString(), ok: true, trigger: 'request', durationMs: Date.now() - began, blobs: summary.blobs }) },
        async err => { await this.#record({ at: new Date(began).toISOString(), ok: false, trigger: 'request', durationMs: Date.now() - began, error: (err as Error).message }) }
      ).catch(() => {}).finally(() => { this.#running -= 1 })
      return backup
    } catch (err) {
      this.#running -= 1
      throw err
    }
  }

  /** Writes a verified archive into `dir` and prunes beyond `keep`; resolves with the result (also recorded). */
  async toDirectory (dir: string, keep: number): Promise<LastBackup> {
    const began = Date.now()
    const path = join(dir, archiveName(this.#source.name, new Date(began)))
    const partial = `${path}.partial`
    this.#running += 1
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      await this.#source.flush()
      const backup = await startBackup(this.#source, { includeFiles: this.#source.blobStore === 'fs' })
      await pipeline(backup.stream, createWriteStream(partial, { mode: 0o600 }), { signal: this.#halt.signal })
      await backup.done
      const verified = await verifyBackup(partial)
      await rename(partial, path)
      await this.#prune(dir, keep)
      const result: LastBackup = { at: new Date(began).toISOString(), ok: true, trigger: 'schedule', durationMs: Date.now() - began, path, bytes: (await stat(path)).size, records: verified.records, blobs: verified.blobs }
      await this.#record(result)
      return result
    } catch (err) {
      await rm(partial, { force: true })
      const result: LastBackup = { at: new Date(began).toISOString(), ok: false, trigger: 'schedule', durationMs: Date.now() - began, path, error: (err as Error).message }
      await this.#record(result)
      return result
    } finally {
      this.#running -= 1
    }
  }

  async #prune (dir: string, keep: number): Promise<void> {
    const archives = (await readdir(dir)).filter(name => ARCHIVE.test(name)).sort()
    for (const name of archives.slice(0, Math.max(0, archives.length - keep))) await rm(join(dir, name), { force: true })
  }

  async #record (result: LastBackup): Promise<void> {
    await this.#state.put('last', result).catch(() => {})
    await this.#audit.append({ type: 'node.backup', outcome: result.ok ? 'ok' : 'error', details: { ...result } }).catch(() => {})
  }

  #arm (at: number): void {
    if (this.#stopped || this.#schedule === undefined) return
    const schedule = this.#schedule
    this.#next = at
    this.#timer = setTimeout(() => {
      this.#scheduled = this.toDirectory(schedule.to, schedule.keep).finally(() => { this.#arm(Date.now() + schedule.everyMs) })
    }, Math.max(0, at - Date.now()))
    this.#timer.unref()
  }
}
