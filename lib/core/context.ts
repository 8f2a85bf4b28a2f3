/**
 * What a feature sees of the kit: a narrow, per-feature handle on the connection manager.
 * Features run dual calls, journal their own writes, use their memory twin and log through it;
 * they never see the manager's state machine, its journal or its client settings.
 */
import type { Backend, JournalOptions, MemoryOptions } from '../types.js'
import type { DualCall, SteppedCall } from './calls.js'
import type { JournalWrite } from './journal.js'
import type { Log } from './log.js'
import type { Metrics } from './metrics.js'
import type { ConnectionManager } from './manager.js'
import type { MemoryStore } from './memory.js'
import type { RedisClient } from './redis-types.js'
import type { KitSpan, SpanAttributes } from './spans.js'

/** The settings a feature may read. */
export interface FeatureSettings {
  commandTimeoutMs: number
  memory: Readonly<MemoryOptions>
  journal: Readonly<JournalOptions>
  /** The environment the kit reads (the `env` option, else `process.env`). */
  env: Readonly<Record<string, string | undefined>>
}

export class FeatureContext {
  /** The full Redis key prefix of this feature: the kit's `keyPrefix`, then the namespace. */
  readonly prefix: string
  readonly settings: FeatureSettings
  /** The kit's log: one prefix, stable codes, once-only warnings. */
  readonly log: Log

  constructor(private readonly manager: ConnectionManager, readonly feature: string, namespace: string) {
    this.prefix = manager.key(namespace, '')
    const { commandTimeoutMs, memory, journal, env } = manager.config
    this.settings = { commandTimeoutMs, memory, journal, env }
    this.log = manager.log
  }

  /** The full Redis key of one of this feature's keys. */
  key(key: string): string {
    return this.prefix + key
  }

  /** The kit's key prefix plus `namespace` (for a feature with several key spaces). */
  namespaced(namespace: string): string {
    return this.manager.key(namespace, '')
  }

  /** This feature's bounded memory twin. */
  get memory(): MemoryStore {
    return this.manager.memory(this.feature)
  }

  /** A second memory twin of this feature (e.g. its tombstones), bounded like the first. */
  extraMemory(name: string): MemoryStore {
    return this.manager.memory(`${this.feature}:${name}`)
  }

  run<T, R = T>(call: DualCall<T, R>): Promise<T> {
    return this.manager.router.run(this.feature, call)
  }

  runStepped<T>(call: SteppedCall<T>): Promise<T> {
    return this.manager.router.runStepped(call)
  }

  /** Journals a write for replay (counted against this feature's quota); false when not kept. */
  record(write: JournalWrite): boolean {
    return this.manager.router.record(this.feature, write)
  }

  /** Where calls go right now. */
  get backend(): Backend {
    return this.manager.backend()
  }

  /** True while Redis is unavailable (connecting or degraded), false when ready or disabled on purpose. */
  get outage(): boolean {
    const state = this.manager.state
    return state === 'connecting' || state === 'degraded'
  }

  get disabled(): boolean {
    return this.manager.state === 'disabled'
  }

  /** The shared client, for library stores (connect-redis, rate-limit-redis); undefined when disabled. */
  get client(): RedisClient | undefined {
    return this.manager.redis
  }

  /**
   * Runs `hook` each time the kit goes back to Redis, right after the outage's last replay
   * batches were written: anything it sends reaches Redis after every replayed write.
   */
  onResume(hook: () => void): void {
    this.manager.onResume(hook)
  }

  /** The kit's counters (metrics.ts): features add their own (cache results, limiter decisions …). */
  get metrics(): Metrics {
    return this.manager.metrics
  }

  /**
   * Runs `work` in an OpenTelemetry span when the kit's telemetry is on and @opentelemetry/api is
   * installed (a no-op span without an app provider); else just runs it. Name spans
   * `express-redis-kit <what>` and keep attributes low-cardinality (a cache's name, never a URL).
   */
  span<T>(name: string, attributes: SpanAttributes, work: (span: KitSpan | undefined) => Promise<T>): Promise<T> {
    return this.manager.span(name, attributes, work)
  }

  /** Marks the feature as in use, for the `/health` summary. */
  register(): void {
    this.manager.features.register(this.feature)
  }
}
