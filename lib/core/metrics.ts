/**
 * What the kit is doing, counted: one small in-process registry per kit, cheap enough for the
 * hot path (plain number increments; a label set is a bounded, fixed-size key), read by
 * `kit.stats()`, by the Prometheus collector (prometheus.ts) at scrape time and by OpenTelemetry
 * observable instruments (otel.ts). Each event is also published on a diagnostics_channel, which
 * costs one check when nobody subscribes.
 *
 * Label values are bounded by construction: states, outcomes and features are fixed lists; cache
 * and limiter names are the names the app gave them (never a URL, a key or a client address).
 */
import { channel, type Channel } from 'node:diagnostics_channel'

/** Upper bounds (seconds) of the command latency histogram. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] as const

export type CommandOutcome = 'ok' | 'timeout' | 'outage' | 'refused' | 'error'
export const COMMAND_OUTCOMES: readonly CommandOutcome[] = ['ok', 'timeout', 'outage', 'refused', 'error']

/** One metric's help and kind, for the exporters. Names follow Prometheus conventions. */
export interface MetricInfo {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  /** The unit, for OpenTelemetry (UCUM). */
  unit: string
  labels: readonly string[]
}

/** The diagnostics channels the kit publishes on (see the README's "Observability"). */
export const CHANNELS = {
  state: 'express-redis-kit:state',
  command: 'express-redis-kit:command',
  replay: 'express-redis-kit:replay',
  cache: 'express-redis-kit:cache',
  rateLimit: 'express-redis-kit:rate-limit',
  session: 'express-redis-kit:session',
  job: 'express-redis-kit:job',
} as const

const channels: Record<keyof typeof CHANNELS, Channel> = {
  state: channel(CHANNELS.state), command: channel(CHANNELS.command), replay: channel(CHANNELS.replay),
  cache: channel(CHANNELS.cache), rateLimit: channel(CHANNELS.rateLimit), session: channel(CHANNELS.session), job: channel(CHANNELS.job),
}

/** One series of a labelled counter: a handle a hot path keeps, so counting is one addition. */
export class Series {
  value = 0
  constructor(readonly labels: Readonly<Record<string, string>>) {}

  add(amount = 1): void {
    this.value += amount
  }
}

/** A counter with a few labels: one number per distinct label set. */
export class LabeledCounter {
  private readonly values = new Map<string, Series>()
  /** Where counts go once `maxSeries` is reached: counted nowhere. */
  private readonly overflow = new Series({})

  constructor(readonly info: MetricInfo, private readonly maxSeries = 1000) {}

  add(labels: Readonly<Record<string, string>>, amount = 1): void {
    this.bind(labels).add(amount)
  }

  /** The series of one label set, created on first use: keep it where the labels are fixed. */
  bind(labels: Readonly<Record<string, string>>): Series {
    let key = ''
    for (const label of this.info.labels) key += `${labels[label] ?? ''}\0`
    let found = this.values.get(key)
    if (found) return found
    // A guard, not a feature: label values come from bounded sets, this only stops a bug.
    if (this.values.size >= this.maxSeries) return this.overflow
    found = new Series(Object.fromEntries(this.info.labels.map((label) => [label, labels[label] ?? ''])))
    this.values.set(key, found)
    return found
  }

  series(): { labels: Record<string, string>; value: number }[] {
    return [...this.values.values()].map(({ labels, value }) => ({ labels: { ...labels }, value }))
  }

  total(filter: Readonly<Record<string, string>> = {}): number {
    let sum = 0
    for (const { labels, value } of this.values.values()) {
      if (Object.entries(filter).every(([name, wanted]) => labels[name] === wanted)) sum += value
    }
    return sum
  }
}

/** A latency histogram with fixed buckets (cumulative counts are computed when read). */
export class LatencyHistogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
  sum = 0
  count = 0
  private listeners: ((seconds: number) => void)[] = []

  constructor(readonly info: MetricInfo) {}

  observe(seconds: number): void {
    let i = 0
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += seconds
    this.count += 1
    for (const listener of this.listeners) listener(seconds)
  }

  /**
   * Also hands each observation to an exporter that keeps its own histogram (OpenTelemetry).
   * Returns what stops it.
   */
  listen(listener: (seconds: number) => void): () => void {
    this.listeners = [...this.listeners, listener]
    return () => { this.listeners = this.listeners.filter((other) => other !== listener) }
  }
}

const PREFIX = 'express_redis_kit_'

function info(name: string, help: string, type: MetricInfo['type'], unit: string, labels: readonly string[] = []): MetricInfo {
  return { name: PREFIX + name, help, type, unit, labels }
}

/** Publishes `message()` on a channel, building it only when someone listens. */
export function publish(name: keyof typeof CHANNELS, message: () => object): void {
  const target = channels[name]
  if (target.hasSubscribers) target.publish(message())
}

/** Whether anyone listens: a hot path asks first, so not even `publish()`'s closure is made otherwise. */
export function listening(name: keyof typeof CHANNELS): boolean {
  return channels[name].hasSubscribers
}

export class Metrics {
  readonly stateChanges = new LabeledCounter(info('state_changes_total', 'State changes of the Redis connection, by the state entered.', 'counter', '{change}', ['state']))
  readonly commands = new LabeledCounter(info('commands_total', 'Calls sent to Redis, by outcome: ok, timeout (no answer in time), outage (connection lost), refused (not run), error (an answer about the data).', 'counter', '{command}', ['outcome']))
  /** The series of `commands` per outcome, bound once: counting a call on the hot path is one addition. */
  readonly commandsBy = Object.fromEntries(COMMAND_OUTCOMES.map((outcome) => [outcome, this.commands.bind({ outcome })])) as Record<CommandOutcome, Series>
  readonly latency = new LatencyHistogram(info('command_duration_seconds', 'Time from a call to Redis\' answer, for answered calls.', 'histogram', 's'))
  readonly probes = new LabeledCounter(info('probes_total', 'Probes of a Redis the kit is not using, by result: ok, slow, failed.', 'counter', '{probe}', ['result']))
  readonly replayed = new LabeledCounter(info('journal_replayed_total', 'Journal entries replayed to Redis after an outage.', 'counter', '{entry}'))
  readonly replayRejected = new LabeledCounter(info('journal_replay_rejected_total', 'Replayed writes Redis rejected (e.g. WRONGTYPE: another program changed the key meanwhile); those writes are lost.', 'counter', '{write}'))
  readonly dropped = new LabeledCounter(info('journal_dropped_total', 'Writes not journaled because the feature\'s journal was full.', 'counter', '{write}', ['feature']))
  readonly inDoubt = new LabeledCounter(info('in_doubt_total', 'Increments and rate-limit hits on the wire when a connection failed: Redis may or may not have applied them.', 'counter', '{write}', ['feature']))
  readonly evictions = new LabeledCounter(info('memory_evictions_total', 'Entries the memory twin evicted to stay within its bounds.', 'counter', '{entry}', ['feature']))
  readonly cacheResults = new LabeledCounter(info('cache_results_total', 'Cache lookups by result: hit, miss, stale, revalidated, bypass, collapsed, error.', 'counter', '{request}', ['cache', 'result']))
  readonly cacheStoredBytes = new LabeledCounter(info('cache_stored_bytes_total', 'Bytes of responses stored by the cache.', 'counter', 'By', ['cache']))
  readonly invalidations = new LabeledCounter(info('cache_invalidations_total', 'Cache invalidations, by kind: key, prefix, tag.', 'counter', '{invalidation}', ['kind']))
  readonly rateLimit = new LabeledCounter(info('rate_limit_decisions_total', 'Rate-limit decisions by limiter, decision (allowed, limited) and backend (redis, memory).', 'counter', '{request}', ['limiter', 'decision', 'backend']))
  readonly sessions = new LabeledCounter(info('session_operations_total', 'Session store operations: read, write, touch, touch_skipped (no Redis call needed), destroy; by the backend that answered, redis or memory.', 'counter', '{operation}', ['operation', 'backend']))
  readonly sessionNearCache = new LabeledCounter(info('session_near_cache_hits_total', 'Session reads answered from this instance\'s near-cache while Redis was unavailable (a session it had seen before the outage).', 'counter', '{read}'))
  readonly jobs = new LabeledCounter(info('jobs_total', 'Job events by queue: added, held, flushed, completed, failed.', 'counter', '{job}', ['queue', 'event']))

  /** Degraded time accumulated before the current state began, in ms. */
  private degradedMs = 0
  private degradedSince: number | undefined

  /** The kit entered `state` at `now` (performance.now() ms). */
  enterState(state: string, now: number): void {
    if (this.degradedSince !== undefined) this.degradedMs += now - this.degradedSince
    this.degradedSince = state === 'degraded' ? now : undefined
    this.stateChanges.add({ state })
  }

  /** Seconds spent degraded so far, including the current stretch. */
  degradedSeconds(now = performance.now()): number {
    return (this.degradedMs + (this.degradedSince === undefined ? 0 : now - this.degradedSince)) / 1000
  }
}
