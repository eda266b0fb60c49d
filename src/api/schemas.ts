/**
 * JSON schemas shared by the routes. Every body rejects unknown fields and
 * bounds every string, array and map, so nothing oversized or misspelt is
 * silently stored and replicated to every site.
 */
export const id = { type: 'string', format: 'uuid' } as const
export const idParams = { type: 'object', required: ['id'], additionalProperties: false, properties: { id } } as const

/** `:peerId` in a path; the peer book and the roster check it is a real peer id. */
export const peerIdParams = { type: 'object', required: ['peerId'], additionalProperties: false, properties: { peerId: { type: 'string', minLength: 1, maxLength: 128 } } } as const

export const nodeRole = { type: 'string', enum: ['full', 'contributor', 'read-only'] } as const

export const name = { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' } as const
export const description = { type: 'string', maxLength: 100_000 } as const
export const tag = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[^\\s,][^,\\u0000-\\u001f]*$' } as const
export const tags = { type: 'array', maxItems: 100, uniqueItems: true, items: tag } as const
/** Custom JSON; its size is checked separately (see jsonSizeLimit). */
export const jsonMap = { type: 'object', maxProperties: 200 } as const
export const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const

export const fileRef = {
  type: 'object',
  required: ['name', 'sha256', 'size', 'mediaType'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 255 },
    sha256,
    size: { type: 'integer', minimum: 0 },
    mediaType: { type: 'string', maxLength: 255 }
  }
} as const

export const errorResponse = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } }
    }
  }
} as const

/** A record view: open-ended, since each kind adds fields. */
export const recordResponse = { type: 'object', additionalProperties: true } as const

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    tag,
    owner: id,
    q: { type: 'string', maxLength: 200 },
    includeDeleted: { type: 'boolean' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    cursor: id
  }
} as const
