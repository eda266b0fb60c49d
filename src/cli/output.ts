export interface Column<T> {
  header: string
  value: (row: T) => unknown
}

function text (value: unknown): string {
  if (value === undefined || value === null) return ''
  if (Array.isArray(value)) return value.map(text).join(', ')
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/** Record fields come from every site: their control characters never reach the terminal. */
function clean (value: string): string {
  return value.replace(/[\u0000-\u001f\u007f]/g, ' ')
}

export function json (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

export function table<T> (rows: T[], columns: Array<Column<T>>, empty = '(none)'): void {
  if (rows.length === 0) {
    process.stdout.write(empty + '\n')
    return
  }
  const cells = rows.map(row => columns.map(c => clean(text(c.value(row)))))
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map(r => (r[i] ?? '').length)))
  const line = (values: string[]): string => values.map((v, i) => i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  process.stdout.write([line(columns.map(c => c.header)), ...cells.map(line)].join('\n') + '\n')
}

/** "label: value" lines, labels aligned; empty values left out. */
export function fields (pairs: Array<[string, unknown]>): void {
  const shown = pairs.filter(([, v]) => text(v) !== '')
  const width = Math.max(0, ...shown.map(([k]) => k.length)) + 1
  process.stdout.write(shown.map(([k, v]) => `${(k + ':').padEnd(width)} ${clean(text(v))}`).join('\n') + '\n')
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}

export function duration (seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor(s % 86400 / 3600)
  const m = Math.floor(s % 3600 / 60)
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`
}
