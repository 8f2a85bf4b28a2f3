/** `kit.stats()`: the same numbers as the exporters, as one plain object (for tests and dashboards). */
import { COMMAND_OUTCOMES, LATENCY_BUCKETS, type LabeledCounter } from '../core/metrics.js'
import type { KitState } from '../types.js'
import type { MetricsSource } from './source.js'

export interface KitStats {
  state: KitState
  degradedSeconds: number
  stateChanges: Record<string, number>
  commands: Record<'ok' | 'timeout' | 'outage' | 'refused' | 'error', number>
  /** Answered calls: count, total seconds, and counts per upper bound `le` in seconds (not cumulative, in order). */
  latency: { count: number; sumSeconds: number; buckets: { le: string; count: number }[] }
  probes: Record<string, number>
  /** Backlog now; replayed, rejected by Redis on replay, dropped (journal full) and in doubt so far. */
  journal: {
    pendingEntries: number; pendingBytes: number; replayed: number; rejected: number
    dropped: Record<string, number>; inDoubt: Record<string, number>
  }
  memory: Record<string, { entries: number; bytes: number; evictions: number }>
  /** Per cache name: result (hit, miss, stale …) → lookups. */
  cache: Record<string, Record<string, number>>
  /** Per cache name: bytes of responses stored. */
  cacheStoredBytes: Record<string, number>
  invalidations: Record<string, number>
  /** Per limiter: `'allowed:redis'`, `'limited:memory'` … → decisions. */
  rateLimit: Record<string, Record<string, number>>
  /** `'read:redis'`, `'touch_skipped:memory'` … → operations. */
  sessions: Record<string, number>
  /** Session reads answered from this instance's near-cache during outages. */
  sessionNearCacheHits: number
  /** Per queue: event → jobs. */
  jobs: Record<string, Record<string, number>>
}

/** One label's values → counts (other labels summed). */
function by(counter: LabeledCounter, label: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const { labels, value } of counter.series()) {
    const key = labels[label] ?? ''
    out[key] = (out[key] ?? 0) + value
  }
  return out
}

/** Two labels → nested counts (`cache → result → n`). */
function nested(counter: LabeledCounter, outer: string, inner: (labels: Record<string, string>) => string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {}
  for (const { labels, value } of counter.series()) {
    const group = (out[labels[outer] ?? ''] ??= {})
    const key = inner(labels)
    group[key] = (group[key] ?? 0) + value
  }
  return out
}

export function statsOf(source: MetricsSource): KitStats {
  const { metrics } = source
  const commands = Object.fromEntries(COMMAND_OUTCOMES.map((outcome) => [outcome, metrics.commands.total({ outcome })])) as KitStats['commands']
  const buckets = [...LATENCY_BUCKETS.map(String), '+Inf'].map((le, i) => ({ le, count: metrics.latency.counts[i] as number }))
  const evictions = by(metrics.evictions, 'feature')
  const memory: KitStats['memory'] = {}
  for (const [feature, size] of Object.entries(source.memory())) memory[feature] = { ...size, evictions: evictions[feature] ?? 0 }
  const journal = source.journal()
  return {
    state: source.state(),
    degradedSeconds: metrics.degradedSeconds(),
    stateChanges: by(metrics.stateChanges, 'state'),
    commands,
    latency: { count: metrics.latency.count, sumSeconds: metrics.latency.sum, buckets },
    probes: by(metrics.probes, 'result'),
    journal: {
      pendingEntries: journal.entries, pendingBytes: journal.bytes, replayed: metrics.replayed.total(), rejected: metrics.replayRejected.total(),
      dropped: by(metrics.dropped, 'feature'), inDoubt: by(metrics.inDoubt, 'feature'),
    },
    memory,
    cache: nested(metrics.cacheResults, 'cache', (labels) => labels.result ?? ''),
    cacheStoredBytes: by(metrics.cacheStoredBytes, 'cache'),
    invalidations: by(metrics.invalidations, 'kind'),
    rateLimit: nested(metrics.rateLimit, 'limiter', (labels) => `${labels.decision ?? ''}:${labels.backend ?? ''}`),
    sessions: Object.fromEntries(metrics.sessions.series().map(({ labels, value }) => [`${labels.operation ?? ''}:${labels.backend ?? ''}`, value])),
    sessionNearCacheHits: metrics.sessionNearCache.total(),
    jobs: nested(metrics.jobs, 'queue', (labels) => labels.event ?? ''),
  }
}
