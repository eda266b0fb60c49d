/** Something a fuzz test saw that the node should not do. */
export interface Finding { kind: string, detail: string }

interface Reporter {
  fail: (...args: [string] | [string, { todo: string }]) => unknown
  pass: (message: string) => unknown
}

/**
 * One assertion per kind of finding: a finding that matches a known bug
 * (by `kind: detail`) is reported as todo, unless `strict`; any other fails,
 * with up to three examples. No findings is one pass.
 */
export function reportFindings (t: Reporter, findings: Finding[], known: Array<[RegExp, string]>, strict: boolean): void {
  const groups = new Map<string, Finding[]>()
  for (const f of findings) {
    const label = `${f.kind}: ${f.detail}`
    const bug = known.find(([re]) => re.test(label))?.[1] ?? `new: ${f.kind}`
    groups.set(bug, [...(groups.get(bug) ?? []), f])
  }
  for (const [bug, list] of groups) {
    const message = `${list.length} finding(s) ${bug}; e.g. ${list.slice(0, 3).map(f => `${f.kind}: ${f.detail.slice(0, 400)}`).join(' || ')}`
    if (bug.startsWith('new:') || strict) t.fail(message)
    else t.fail(message, { todo: 'known bug, see the fuzz report' })
  }
  if (groups.size === 0) t.pass('no findings')
}
