/**
 * A strict reader of the Prometheus text exposition format (version
 * 0.0.4, what Prometheus scrapes from `text/plain; version=0.0.4`), for
 * tests: anything Prometheus would reject, and a few things it would only
 * frown on (a series twice, a family split in two, histogram buckets that
 * do not add up), throws with the line number.
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */

export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Family { name: string, type: string, help?: string, samples: Sample[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

class ParseError extends Error {
  constructor (line: number, message: string) {
    super(`line ${line}: ${message}`)
  }
}

/** A float as Prometheus reads one (Go's strconv.ParseFloat): special values in any case, as prom-client writes "Nan". */
function parseValue (text: string, line: number): number {
  const special = /^([-+]?)(inf|infinity)$/i.exec(text)
  if (special !== null) return special[1] === '-' ? -Infinity : Infinity
  if (/^nan$/i.test(text)) return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new ParseError(line, `"${text}" is not a float`)
  return Number(text)
}

function unescape (text: string, line: number, quote: boolean): string {
  return text.replace(/\\(.)/g, (_m, c: string) => {
    if (c === '\\') return '\\'
    if (c === 'n') return '\n'
    if (quote && c === '"') return '"'
    throw new ParseError(line, `bad escape \\${c}`)
  })
}

/** One sample line: name, labels, value, optional timestamp. */
function parseSample (text: string, line: number): Sample {
  const name = METRIC_NAME.exec(text)?.[0]
  if (name === undefined) throw new ParseError(line, `no metric name in "${text}"`)
  let rest = text.slice(name.length)
  const labels: Record<string, string> = {}
  if (rest.startsWith('{')) {
    rest = rest.slice(1)
    while (!rest.startsWith('}')) {
      const label = LABEL_NAME.exec(rest)?.[0]
      if (label === undefined) throw new ParseError(line, `bad label name at "${rest}"`)
      if (label in labels) throw new ParseError(line, `label ${label} twice`)
      rest = rest.slice(label.length)
      if (!rest.startsWith('="')) throw new ParseError(line, `label ${label} has no ="value"`)
      rest = rest.slice(2)
      const end = /^((?:[^"\\\n]|\\.)*)"/.exec(rest)
      if (end === null) throw new ParseError(line, `label ${label}'s value is not closed`)
      labels[label] = unescape(end[1] as string, line, true)
      rest = rest.slice(end[0].length)
      if (rest.startsWith(',')) rest = rest.slice(1)
      else if (!rest.startsWith('}')) throw new ParseError(line, `expected , or } after label ${label}`)
    }
    rest = rest.slice(1)
  }
  const parts = rest.split(/[ \t]+/)
  if (parts[0] !== '' || parts.length < 2 || parts.length > 3) throw new ParseError(line, `expected " value [timestamp]" after the labels, got "${rest}"`)
  const value = parseValue(parts[1] as string, line)
  if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) throw new ParseError(line, `bad timestamp "${parts[2]}"`)
  return { name, labels, value }
}

/** The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` belong to it. */
function familyOf (name: string, families: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const type = families.get(base)?.type
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base
  }
  return name
}

function seriesKey (s: Sample): string {
  return `${s.name}{${Object.keys(s.labels).sort().map(k => `${k}=${JSON.stringify(s.labels[k])}`).join(',')}}`
}

/** Histogram buckets: `le` on every one, increasing, cumulative, ending at +Inf equal to `_count`. */
function checkHistogram (family: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>, count?: number, sum?: number }>()
  for (const s of family.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const group = groups.get(key) ?? { buckets: [] }
    groups.set(key, group)
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`)
      group.buckets.push([parseValue(le, 0), s.value])
    } else if (s.name.endsWith('_count')) group.count = s.value
    else if (s.name.endsWith('_sum')) group.sum = s.value
    else throw new Error(`${family.name}: ${s.name} is not part of a histogram`)
  }
  for (const [key, g] of groups) {
    const last = g.buckets.at(-1)
    if (last === undefined || last[0] !== Infinity) throw new Error(`${family.name}${key}: no +Inf bucket`)
    if (g.count === undefined || g.sum === undefined) throw new Error(`${family.name}${key}: no _count or _sum`)
    if (last[1] !== g.count) throw new Error(`${family.name}${key}: +Inf bucket ${last[1]} is not _count ${g.count}`)
    for (let i = 1; i < g.buckets.length; i++) {
      const [le, n] = g.buckets[i] as [number, number]
      const [prevLe, prevN] = g.buckets[i - 1] as [number, number]
      if (!(le > prevLe) || n < prevN) throw new Error(`${family.name}${key}: buckets not increasing and cumulative at le=${le}`)
    }
  }
}

export function parsePrometheusText (text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed')
  const families = new Map<string, Family>()
  const closed = new Set<string>()
  const seen = new Set<string>()
  let current: string | undefined
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, type: 'untyped', samples: [] }
      families.set(name, f)
    }
    return f
  }
  const enter = (name: string, line: number): void => {
    if (current === name) return
    if (current !== undefined) closed.add(current)
    if (closed.has(name)) throw new ParseError(line, `${name} appears again after other metrics: a family must be contiguous`)
    current = name
  }
  text.slice(0, -1).split('\n').forEach((raw, i) => {
    const line = i + 1
    if (raw.trim() === '') return
    if (raw.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(raw)
      if (m === null) return
      const [, keyword, name, rest = ''] = m as unknown as [string, string, string, string | undefined]
      if (METRIC_NAME.exec(name)?.[0] !== name) throw new ParseError(line, `bad metric name "${name}"`)
      enter(name, line)
      const f = family(name)
      if (keyword === 'HELP') {
        if (f.help !== undefined) throw new ParseError(line, `second HELP for ${name}`)
        f.help = unescape(rest, line, false)
      } else {
        if (!TYPES.has(rest)) throw new ParseError(line, `unknown type "${rest}" for ${name}`)
        if (f.samples.length > 0 || f.type !== 'untyped') throw new ParseError(line, `TYPE for ${name} after its samples or twice`)
        f.type = rest
      }
      return
    }
    const sample = parseSample(raw, line)
    const name = familyOf(sample.name, families)
    enter(name, line)
    const key = seriesKey(sample)
    if (seen.has(key)) throw new ParseError(line, `series ${key} twice`)
    seen.add(key)
    const f = family(name)
    if (f.type === 'counter' && !(sample.value >= 0)) throw new ParseError(line, `counter ${key} is ${sample.value}`)
    f.samples.push(sample)
  })
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

/** The samples of `name` (a sample name, such as `x_count`) whose labels include `labels`. */
export function samples (families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const out: Sample[] = []
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) out.push(s)
    }
  }
  return out
}
