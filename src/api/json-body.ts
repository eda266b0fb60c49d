import type { FastifyInstance } from 'fastify'
import { DwError } from '../errors.ts'

/**
 * Deepest nesting a JSON body may have. Records are small documents; deep
 * nesting only serves to make a parser, a validator or Automerge recurse
 * until it fails (JSON 5,000 levels deep answered 500).
 */
export const MAX_JSON_DEPTH = 32

/** The deepest nesting of `text`, counted without parsing (brackets inside strings do not count). */
export function jsonDepth (text: string): number {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // a backslash escapes the next character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b || c === 0x5b) {
      depth++
      if (depth > deepest) deepest = depth
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return deepest
}

/** JSON bodies are refused with 400 when nested deeper than MAX_JSON_DEPTH, before they are parsed. */
export function limitJsonDepth (app: FastifyInstance): void {
  // Fastify's own parser after the check: it keeps refusing __proto__ and constructor.prototype keys.
  const parse = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (jsonDepth(body as string) > MAX_JSON_DEPTH) {
      done(new DwError('INVALID_INPUT', `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`), undefined)
      return
    }
    parse(request, body as string, done)
  })
}
