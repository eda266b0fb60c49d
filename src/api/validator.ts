import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv) => Ajv

function makeAjv (coerceTypes: boolean): Ajv {
  const ajv = new Ajv({ coerceTypes: coerceTypes ? 'array' : false, useDefaults: true, removeAdditional: false, allErrors: false, strict: false })
  addFormats(ajv)
  return ajv
}

/**
 * Query strings and path parameters arrive as text, so "limit=2" must be
 * coerced to a number. JSON bodies must not be: `{"name": 42}` is a client
 * bug to report, not a name to store as "42".
 */
export function validatorCompiler (): FastifySchemaCompiler<any> {
  const coercing = makeAjv(true)
  const strict = makeAjv(false)
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object) as any
}
