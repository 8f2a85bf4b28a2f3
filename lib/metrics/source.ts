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
  journalEntries: gauge('journal_pending_entries', 'Journal entries waiting for replay (those in replay batches not yet confirmed included).', '{entry}'),
  journalBytes: gauge('journal_pending_bytes', 'Bytes of journal entries waiting for replay.', 'By'),
  memoryEntries: gauge('memory_entries', 'Entries held by each feature\'s memory twin.', '{entry}', ['feature']),
  memoryBytes: gauge('memory_bytes', 'Bytes held by each feature\'s memory twin (approximate).', 'By', ['feature']),
  jobsWaiting: gauge('queue_jobs', 'Jobs by queue and state: waiting, active, delayed, failed, completed (in Redis, as BullMQ counts them), held (in this process\'s outbox, waiting for Redis), local (run or running from memory).', '{job}', ['queue', 'state']),
} as const

/** Every labelled counter of the registry, in a stable order. */
export function counters(metrics: Metrics): LabeledCounter[] {
  return [
    metrics.stateChanges, metrics.commands, metrics.probes, metrics.replayed, metrics.replayRejected, metrics.dropped, metrics.inDoubt,
    metrics.evictions, metrics.cacheResults, metrics.cacheStoredBytes, metrics.invalidations, metrics.rateLimit,
    metrics.sessions, metrics.sessionNearCache, metrics.jobs,
  ]
}

export function histograms(metrics: Metrics): LatencyHistogram[] {
  return [metrics.latency]
}

/** What the source reads from the kit: the connection manager's state and backlog, the memory twins. */
export interface KitReadings {
  readonly metrics: Metrics
  readonly state: KitState
  /** Journal entries and owed replay batches not yet in Redis. */
  readonly pending: number
  readonly journal: { readonly bytes: number }
  readonly features: { sizes(): Record<string, { entries: number; bytes: number }> }
}

/** Per-queue counts as `/health` reports them (numbers, `null` while unknown, and the worker count). */
export type QueueSummary = () => Promise<Record<string, object>> | undefined

/** The MetricsSource of one kit; `queues` is asked at scrape time (the job queue may start later). */
export function kitSource(kit: KitReadings, queues: QueueSummary): MetricsSource {
  return {
    metrics: kit.metrics,
    state: () => kit.state,
    journal: () => ({ entries: kit.pending, bytes: kit.journal.bytes }),
    memory: () => kit.features.sizes(),
    async queues() {
      const summary = (await queues()) ?? {}
      const out: Record<string, Record<string, number>> = {}
      for (const [queue, health] of Object.entries(summary)) {
        const states: Record<string, number> = {}
        for (const [state, value] of Object.entries(health)) if (state !== 'workers' && typeof value === 'number') states[state] = value
        out[queue] = states
      }
      return out
    },
  }
}
