/**
 * What the exporters read: the kit's counters and the gauges that are only known at read time
 * (the state, the journal's backlog, the memory twins' sizes, queue depths).
 */
import type { KitState } from '../types.js'
import type { LabeledCounter, LatencyHistogram, MetricInfo, Metrics } from '../core/metrics.js'

export interface MetricsSource {
  readonly metrics: Metrics
  state(): KitState
  journal(): { entries: number; bytes: number }
  memory(): Record<string, { entries: number; bytes: number }>
  /** Queue depths by queue and job state, when the job queue is in use. */
  queues?(): Promise<Record<string, Record<string, number>>>
}

export const STATES: readonly KitState[] = ['disabled', 'connecting', 'ready', 'degraded']

const PREFIX = 'express_redis_kit_'

function gauge(name: string, help: string, unit: string, labels: readonly string[] = []): MetricInfo {
  return { name: PREFIX + name, help, type: 'gauge', unit, labels }
}

/** The gauges computed when read. */
export const GAUGES = {
  state: gauge('state', 'Current state of the Redis connection (1 for the current state, 0 otherwise).', '1', ['state']),
  degraded: { name: `${PREFIX}degraded_seconds_total`, help: 'Time spent degraded (serving from memory because Redis was unavailable).', type: 'counter', unit: 's', labels: [] } as MetricInfo,
  journalEntries: gauge('journal_pending_entries', 'Journal entries waiting for replay.', '{entry}'),
  journalBytes: gauge('journal_pending_bytes', 'Bytes of journal entries waiting for replay.', 'By'),
  memoryEntries: gauge('memory_entries', 'Entries held by each feature\'s memory twin.', '{entry}', ['feature']),
  memoryBytes: gauge('memory_bytes', 'Bytes held by each feature\'s memory twin (approximate).', 'By', ['feature']),
  jobsWaiting: gauge('jobs', 'Jobs by queue and state (waiting, active, delayed, failed, held).', '{job}', ['queue', 'state']),
} as const

/** Every labelled counter of the registry, in a stable order. */
export function counters(metrics: Metrics): LabeledCounter[] {
  return [
    metrics.stateChanges, metrics.commands, metrics.probes, metrics.replayed, metrics.dropped, metrics.inDoubt,
    metrics.evictions, metrics.cacheResults, metrics.cacheStoredBytes, metrics.invalidations, metrics.rateLimit,
    metrics.sessions, metrics.jobs,
  ]
}

export function histograms(metrics: Metrics): LatencyHistogram[] {
  return [metrics.latency]
}
