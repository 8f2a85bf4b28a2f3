/**
 * What a failover scenario (`cluster-kill`, `sentinel-kill`) records besides the common run
 * result, and its rows in the report's "| | kit | peer |" table.
 */
import type { RunResult } from './stats.js'

export interface FailoverInfo {
  /** The topology in a few words, e.g. "Redis Cluster, 3 masters + 1 replica each". */
  readonly topology: string
  /** The master killed with kill -9 (not restarted during the run) and the one that replaced it. */
  readonly killedPort: number
  readonly newMasterPort: number
  /** Keys the killed master held just before the kill, counted by pattern (`session:*`, `visitor_count`, …). */
  readonly killedKeys: Readonly<Record<string, number>>
  /** Setup requests (login, warm-up) that failed before the same request succeeded, by answer. */
  readonly setupFailures: Readonly<Record<string, number>>
}

const counted = (counts: Readonly<Record<string, number>>, none: string): string => {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  return entries.length === 0 ? none : entries.map(([name, n]) => `\`${name}\` ×${n}`).join(', ')
}

/** The failover rows of one scenario's table. */
export function failoverRows(kit: RunResult | undefined, peer: RunResult | undefined): string[] {
  const both = (f: (run: RunResult, info: FailoverInfo) => string): string =>
    [kit, peer].map((run) => (run?.failover ? f(run, run.failover) : '–')).join(' | ')
  return [
    `| Master killed → new master, reported by the topology after the kill | ${both((run, info) => `:${info.killedPort} → :${info.newMasterPort}, ${((run.returnAt - run.faultAt) / 1000).toFixed(2)} s`)} |`,
    `| Keys on the killed master just before the kill | ${both((_run, info) => counted(info.killedKeys, 'none'))} |`,
    `| Setup requests (login, warm-up) that failed before they succeeded | ${both((_run, info) => counted(info.setupFailures, 'none'))} |`,
  ]
}
