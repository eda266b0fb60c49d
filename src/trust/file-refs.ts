import { asMap } from '../crdt/shape.ts'
import type { ChangeFacts } from './rules.ts'

/**
 * What a file reference (`{name, sha256, size, mediaType}` in a version or a
 * report) must look like. One definition for the HTTP API, which refuses a
 * bad reference before writing anything, and for the permission rules,
 * which refuse a peer's change that adds one: a size that is not a
 * non-negative safe integer, or a media type that could smuggle a header
 * line, never enters a record anywhere.
 */

export const MAX_MEDIA_TYPE = 255

// RFC 6838 restricted-name for type and subtype; RFC 9110 parameters
// (token or quoted-string), kept conservative: single spaces only around
// ";", no tabs, no backslash escapes, nothing outside printable ASCII.
const NAME = '[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}'
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
const QUOTED = '"[ !#-\\[\\]-~]*"'
const MEDIA_TYPE = new RegExp(`^${NAME}/${NAME}(?: *; *${NAME}=(?:${TOKEN}|${QUOTED}))*$`)

const SHA256_HEX = /^[0-9a-f]{64}$/

export function isMediaType (value: unknown): boolean {
  return typeof value === 'string' && value.length <= MAX_MEDIA_TYPE && MEDIA_TYPE.test(value)
}

export function isFileSize (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** Why `ref` is not a well-formed file reference, or undefined when it is. */
export function fileRefProblem (ref: unknown): string | undefined {
  const f = asMap(ref)
  if (typeof f.name !== 'string' || f.name === '') return 'a file needs a name'
  const which = `file ${JSON.stringify(f.name.slice(0, 100))}`
  if (typeof f.sha256 !== 'string' || !SHA256_HEX.test(f.sha256)) return `${which}: sha256 must be 64 lowercase hex characters`
  if (!isFileSize(f.size)) return `${which}: size must be a whole number of bytes, 0 to ${Number.MAX_SAFE_INTEGER}`
  if (!isMediaType(f.mediaType)) return `${which}: mediaType must be a type/subtype media type (RFC 6838) with optional parameters, printable ASCII, at most ${MAX_MEDIA_TYPE} characters`
  return undefined
}

/**
 * The rule: every file reference a change adds (a new version's files, a
 * record's `files` list when the change touches it) is well formed. It
 * reads only the change itself, so every honest node gives the same
 * verdict. References written before this rule stay as they are (a change
 * that does not touch them is not judged on them); the API serves a
 * malformed media type as application/octet-stream.
 */
export function judgeFileRefs (c: ChangeFacts): string | undefined {
  const versions = c.touched.get('versions')
  if (versions !== undefined) {
    for (const k of versions) {
      if (k === '') continue
      const problem = listProblem(asMap(asMap(c.after.versions)[k]).files, `version ${k}`)
      if (problem !== undefined) return problem
    }
  }
  if (c.touched.has('files')) return listProblem(c.after.files, 'files')
  return undefined
}

/**
 * Judges the entries that name a blob (a name and a sha256: what the record
 * summary takes as a reference); anything else in the list references
 * nothing and is left to the readers, which skip it.
 */
function listProblem (files: unknown, where: string): string | undefined {
  if (!Array.isArray(files)) return undefined
  for (const f of files) {
    const m = asMap(f)
    if (typeof m.name !== 'string' || typeof m.sha256 !== 'string' || !SHA256_HEX.test(m.sha256)) continue
    const problem = fileRefProblem(f)
    if (problem !== undefined) return `${where}: ${problem}`
  }
  return undefined
}
