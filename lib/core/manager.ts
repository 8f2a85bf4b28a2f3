/**
 * The connection manager: owns the one Redis connection and its state, and decides for every
 * call whether Redis or the memory twin answers.
 *
 * - ready: calls go to Redis; the watchdog bounds each (watchdog.ts); a call that fails on an
 *   outage or gets no answer in time is answered from memory and the kit turns degraded.
 * - connecting / degraded: calls never touch Redis; writes go to memory and to the journal;
 *   recovery.ts probes and brings the kit back, replaying the journal exactly once (replay.ts).
 *
 * What a call that got no answer did is followed until it is known (pending.ts): a late reply
 * means it ran; "not run" journals it; an unknown outcome journals it only if running it twice is
 * harmless, and otherwise reports it (`inDoubt` event, one count in the log line of the comeback).
 */
import { EventEmitter } from 'node:events'
import calculateSlot from 'cluster-key-slot'
import type { Backend, KitEvents, KitState } from '../types.js'
import { redactError, redactText, type KitConfig } from './config.js'
import { FeatureContext } from './context.js'
import { withHint } from './hints.js'
import { OutageJournal } from './journal.js'
import { Log } from './log.js'
import { Features } from './features.js'
import { Metrics, publish } from './metrics.js'
import type { MemoryStore } from './memory.js'
import { HangError } from './outage.js'
import { Recovery, type RecoveryHost } from './recovery.js'
import { createRedisClient, describeClient, settingsWarning } from './redis-client.js'
import type { RedisClient } from './redis-types.js'
import { Replayer, type ReplayReport } from './replay.js'
import { Router } from './router.js'
import { inSpan, openTelemetryTracer, type KitSpan, type KitTracer, type SpanAttributes } from './spans.js'
import { ServerRejected, verifyServer } from './verify.js'
import { Watchdog, within, type Verdict } from './watchdog.js'

/** Below this, a stall verdict trips on a healthy Redis answering a burst on a loaded machine. */
const STALL_FLOOR_MS = 100
const BAD_DATABASE = /DB index is out of range|invalid DB index/i

export class ConnectionManager extends EventEmitter<KitEvents> {
  readonly config: KitConfig
  readonly log: Log
  readonly journal: OutageJournal
  readonly watchdog: Watchdog
  /** Sends each call to Redis or memory (router.ts). */
  readonly router: Router
  /** What the kit did, counted (metrics.ts). */
  readonly metrics = new Metrics()
  /** Spans for replays and features' slow work: the app's OpenTelemetry tracer, unless `telemetry: false`. */
  readonly tracer: KitTracer | undefined
  /** Where the kit is configured to connect, without secrets. */
  private readonly configured: string
  private readonly replayer: Replayer
  private readonly recovery: Recovery | undefined
  private readonly client: RedisClient | undefined
  private currentState: KitState
  private stateSince = new Date()
  private error: Error | undefined
  /** The features in use: their contexts, memory twins and resume hooks. */
  readonly features: Features
  private connectTimer: NodeJS.Timeout | undefined
  private closed = false
  private ownsClient = false
  private selectFailed: Error | undefined
  /** Connected (TCP, and TLS if on) with no reply yet: a reset now is a refusal, not an outage (hints.ts). */
  private beforeFirstReply = false
  /** The reason the server was last rejected in this outage (verify.ts), logged once. */
  private rejection: string | undefined
  /** Key namespaces of the features in use, for the rights check (verify.ts). */
  private readonly namespaces = new Set<string>()
  /** Increments reported in doubt during the current outage, for the comeback's log line. */
  private inDoubt = 0
  private settleFirstAttempt: () => void = () => {}
  private readonly firstAttempt: Promise<void>

  constructor(config: KitConfig) {
    super()
    this.config = config
    this.tracer = config.telemetry ? openTelemetryTracer() : undefined
    this.log = new Log(config.logger, (text) => redactText(text, config))
    this.journal = new OutageJournal(config.journal, (feature, key) => this.journalFull(feature, key))
    this.features = new Features(config.memory, (feature) => this.metrics.evictions.add({ feature }))
    const clustered = config.topology.kind === 'cluster' || config.redis?.isCluster === true
    this.replayer = new Replayer({
      keyPrefix: config.keyPrefix, journal: this.journal, stepTimeoutMs: Math.max(config.commandTimeoutMs, 1000),
      ...(clustered ? { slotOf: (key: string) => calculateSlot(key) } : {}),
      replayed: (entries) => this.metrics.replayed.add({}, entries),
    })
    this.watchdog = new Watchdog(Math.min(STALL_FLOOR_MS, config.commandTimeoutMs), config.commandTimeoutMs, this.onHang)
    this.router = new Router({
      watchdog: this.watchdog,
      metrics: this.metrics,
      journal: this.journal,
      commandTimeoutMs: config.commandTimeoutMs,
      route: () => this.closed ? 'closed' : this.currentState === 'ready' ? this.client : undefined,
      journaling: () => this.currentState !== 'disabled' && !this.closed,
      failed: (error) => this.degrade(error),
      doubted: (write) => {
        this.inDoubt += 1
        this.metrics.inDoubt.add({ feature: write.feature }, Math.abs(write.amount))
        this.emit('inDoubt', write)
      },
    })
    this.firstAttempt = new Promise((resolve) => { this.settleFirstAttempt = resolve })
    if (!config.enabled) {
      this.currentState = 'disabled'
      this.configured = 'none (disabled)'
      this.settleFirstAttempt()
      this.log.info('Redis is disabled (ENABLE_REDIS=false or enabled: false); every feature serves from memory')
      return
    }
    this.currentState = 'connecting'
    this.ownsClient = config.redis === undefined
    const client = config.redis ?? createRedisClient(config)
    this.client = client
    this.configured = this.ownsClient ? config.server : describeClient(client)
    const risky = this.ownsClient ? undefined : settingsWarning(client)
    if (risky) this.log.warn('ERR_KIT_CLIENT_SETTINGS', risky)
    this.recovery = new Recovery(this.recoveryHost(client))
    this.attach(client)
    this.connectTimer = setTimeout(() => {
      this.degrade(this.error ?? new Error(`Redis was not ready within connectTimeoutMs (${config.connectTimeoutMs} ms)`))
    }, config.connectTimeoutMs)
    this.connectTimer.unref()
    if (client.status === 'ready') this.recovery.connectionReady()
    else if (client.status === 'wait' || client.status === 'end') client.connect().catch(() => {})
  }

  /**
   * Which server the kit uses, without secrets, for logs and health output: for Sentinel also the
   * master it is connected to now (it changes with every failover).
   */
  get server(): string {
    const stream = (this.client as { stream?: { remoteAddress?: string; remotePort?: number } } | undefined)?.stream
    const sentinel = this.config.topology.kind === 'sentinel' && this.config.redis === undefined
    if (!sentinel || this.client?.status !== 'ready' || !stream?.remoteAddress) return this.configured
    return `${this.configured} (master ${stream.remoteAddress.includes(':') ? `[${stream.remoteAddress}]` : stream.remoteAddress}:${stream.remotePort ?? '?'})`
  }

  get state(): KitState {
    return this.currentState
  }

  get since(): Date {
    return this.stateSince
  }

  /** The last connection problem, redacted; undefined while healthy. */
  get lastError(): Error | undefined {
    return this.error
  }

  /** Journal entries and owed replay batches not yet in Redis. */
  get pending(): number {
    return this.replayer.pending
  }

  /** Replay batches sent whose outcome is not known yet. */
  get batchesInDoubt(): number {
    return this.replayer.inDoubt
  }

  /** Resolves once the first connection attempt settled, whichever way; never rejects. */
  ready(): Promise<void> {
    return this.firstAttempt
  }

  backend(): Backend {
    return this.currentState === 'ready' ? 'redis' : 'memory'
  }

  /** The shared client, for features that hand it to a library store (connect-redis, rate-limit-redis). */
  get redis(): RedisClient | undefined {
    return this.client
  }

  /** The full Redis key of a feature's key: kit prefix, then namespace (`cache:`, `session:` …). */
  key(namespace: string, key: string): string {
    return `${this.config.keyPrefix}${namespace}${key}`
  }

  /** The memory twin of one feature (created once, bounded by the `memory` options). */
  memory(feature: string): MemoryStore {
    return this.features.memory(feature)
  }

  /** The narrow handle a feature works through (one per feature name). */
  context(feature: string, namespace: string): FeatureContext {
    this.namespaces.add(namespace)
    return this.features.context(feature, () => new FeatureContext(this, feature, namespace))
  }

  /**
   * Runs `hook` each time the kit switches back to Redis, right after the outage's last replay
   * batches were written: anything it sends reaches Redis after every replayed write.
   */
  onResume(hook: () => void): void {
    this.features.onResume(hook)
  }

  /** Runs `work` in a span of the app's tracer when telemetry is on (spans.ts); else just runs it. */
  span<T>(name: string, attributes: SpanAttributes, work: (span: KitSpan | undefined) => Promise<T>): Promise<T> {
    return inSpan(this.tracer, name, attributes, work)
  }

  /** A Redis call failed because Redis is unavailable. */
  failed(error: Error): void {
    this.degrade(error)
  }

  private readonly onHang = (verdict: Verdict, waitedMs: number): void => {
    const ms = Math.round(waitedMs)
    this.degrade(new HangError(verdict === 'stalled'
      ? `Redis stopped answering (no reply for ${ms} ms while calls were waiting)`
      : `a call waited ${ms} ms, the command timeout (commandTimeoutMs)`))
  }

  /** The kit's verdict first, then a live PING with its own timeout, for `/health/redis`. Resolves the latency in ms. */
  async ping(timeoutMs = this.config.healthTimeoutMs): Promise<number> {
    const client = this.client
    if (!client || this.closed) throw new Error('Redis is not configured')
    if (this.currentState !== 'ready') throw this.error ?? new Error(`the kit is ${this.currentState}`)
    const started = performance.now()
    try {
      await within(client.ping(), timeoutMs, 'PING')
    } catch (error) {
      throw this.redact(error)
    }
    return performance.now() - started
  }

  /** Ends the connection (if the kit created it) and every timer; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.recovery?.close()
    clearTimeout(this.connectTimer)
    this.watchdog.clear()
    this.replayer.clear()
    this.settleFirstAttempt()
    const client = this.client
    if (!client) return
    client.removeListener('error', this.onError)
    client.removeListener('close', this.onClose)
    client.removeListener('end', this.onClose)
    client.removeListener('ready', this.onReady)
    client.removeListener('connect', this.onConnect)
    if (!this.ownsClient) return
    client.on('error', () => {}) // a late socket error must not become an unhandled 'error' event
    if (client.status === 'ready') await within(client.quit(), this.config.commandTimeoutMs, 'QUIT').catch(() => {})
    // Also after QUIT: only disconnect() ends a Sentinel client's subscriptions to the sentinels.
    client.disconnect()
  }

  private recoveryHost(client: RedisClient): RecoveryHost {
    return {
      client,
      watchdog: this.watchdog,
      replayer: this.replayer,
      commandTimeoutMs: this.config.commandTimeoutMs,
      maxRetryDelayMs: this.config.maxRetryDelayMs,
      wantsRedis: () => !this.closed && (this.currentState === 'connecting' || this.currentState === 'degraded'),
      initial: () => this.currentState === 'connecting',
      blocked: () => this.selectFailed,
      probed: (result) => this.metrics.probes.add({ result }),
      verify: (target) => verifyServer(target, this.config.topology, this.config.keyPrefix, Math.max(this.config.commandTimeoutMs, 1000), [...this.namespaces]),
      noteError: (error) => this.rejected(error),
      resumed: (awaited, sent, lastBatches) => this.resumed(awaited, sent, lastBatches),
      failed: (error) => this.degrade(error),
      span: (name, attributes, work) => this.span(name, attributes, work),
    }
  }

  private attach(client: RedisClient): void {
    client.on('error', this.onError)
    client.on('close', this.onClose)
    client.on('end', this.onClose)
    client.on('ready', this.onReady)
    client.on('connect', this.onConnect)
  }

  private readonly onError = (error: Error): void => {
    this.error = this.redact(error)
    // ioredis reports a failed SELECT only as an 'error' and goes on in database 0: using that
    // connection would read and write another database, so it must never become ready.
    if (BAD_DATABASE.test(error.message)) {
      this.selectFailed = new Error(`cannot select database ${this.config.db} (${error.message}); set REDIS_DB or \`db\` to a database the server has`)
      this.degrade(this.selectFailed)
    }
  }

  private readonly onConnect = (): void => {
    this.selectFailed = undefined
    this.beforeFirstReply = true
  }

  private readonly onClose = (): void => {
    this.beforeFirstReply = false
    if (this.closed) return
    this.recovery?.connectionClosed()
    this.degrade(this.error ?? new Error('Redis connection closed'))
  }

  private readonly onReady = (): void => {
    this.beforeFirstReply = false
    this.recovery?.connectionReady()
  }

  private degrade(error: Error): void {
    if (this.closed) return
    this.error = this.redact(error)
    const from = this.currentState
    if (from === 'ready' || from === 'connecting') {
      this.inDoubt = 0
      this.setState('degraded', this.error)
    }
    if (from === 'ready' || from === 'connecting') this.recovery?.lost(from === 'ready')
    else this.recovery?.retryLater()
  }

  /** The comeback: the last replay batches are on the wire; switch now, in this tick. */
  private resumed(awaited: ReplayReport, sent: number, lastBatches: Promise<unknown>[]): void {
    this.error = undefined
    this.setState('ready', undefined, awaited.applied + sent)
    // Rejections of the last batches are known only once they are answered: one line for all.
    void Promise.allSettled(lastBatches).then(() => {
      const late = this.replayer.takeReport()
      const failed = awaited.failed + late.failed
      if (failed === 0) return
      this.metrics.replayRejected.add({}, failed)
      this.log.warn('ERR_KIT_REPLAY_REJECTED', `Redis rejected ${failed} of the ${awaited.applied + sent} write(s) replayed after the outage `
        + `(first: ${awaited.firstError ?? late.firstError ?? ''}); those writes are lost. `
        + 'Another program changed those keys meanwhile (e.g. to another type).')
    })
  }

  private setState(to: KitState, error?: Error, replayed = 0): void {
    const from = this.currentState
    if (from === to) return
    this.currentState = to
    this.stateSince = new Date()
    this.metrics.enterState(to, performance.now())
    publish('state', () => ({ state: to, previous: from, error: error?.message }))
    clearTimeout(this.connectTimer)
    if (to === 'ready') {
      this.log.info(`Redis ${from === 'degraded' ? 'is back' : 'connected'} at ${this.server}; features use Redis${this.describeOutage(replayed)}`)
      this.features.resumed()
    } else if (to === 'degraded') {
      this.log.notice(`Redis unavailable at ${this.server} (${error?.message ?? 'unknown error'}); serving from memory until it answers again`)
      this.log.forget('outage')
      this.rejection = undefined
    }
    this.settleFirstAttempt()
    this.emit('stateChange', to, from)
    if (to === 'degraded' && error) this.emit('degraded', error)
    if (to === 'ready' && from === 'degraded') this.emit('recovered')
  }

  /** What the outage left behind, in a few words, or '' when there is nothing to tell. */
  private describeOutage(replayed: number): string {
    const parts: string[] = []
    if (replayed > 0) parts.push(`replayed ${replayed} write(s) made during the outage`)
    if (this.inDoubt > 0) {
      parts.push(`${this.inDoubt} increment(s) were in flight when the connection failed, so Redis may or may not have applied them (see the inDoubt event)`)
    }
    this.inDoubt = 0
    return parts.length === 0 ? '' : `; ${parts.join('; ')}`
  }

  private journalFull(feature: string, key: string): void {
    this.metrics.dropped.add({ feature })
    const { maxEntries, maxBytes } = this.config.journal
    this.log.warnOnce('ERR_KIT_JOURNAL_FULL', `the outage journal of ${feature} is full (journal.maxEntries ${maxEntries}, `
      + `journal.maxBytes ${maxBytes}); further writes (first: ${key}) are kept in memory only and will not reach Redis. `
      + 'Raise the journal limits if outages last this long. Logged once per outage.', `${feature}\0outage`)
  }

  /**
   * A comeback failed. A server that answers but cannot be used as configured (a Sentinel or a
   * replica behind a URL, an ACL user without a right the kit needs) will not get better by
   * waiting: the first attempt settles at once, and during an outage each new reason is logged once.
   */
  private rejected(error: unknown): void {
    this.error = this.redact(error)
    if (!(error instanceof ServerRejected) || this.rejection === this.error.message) return
    if (this.currentState === 'connecting') this.degrade(error) // its log line names the reason
    else this.log.warn('ERR_KIT_SERVER_REJECTED', `Redis at ${this.server} answers but cannot be used: ${this.error.message}`)
    this.rejection = this.error.message
  }

  /** An error safe to show, with the fix for a connection problem the kit recognises (hints.ts). */
  private redact(error: unknown): Error {
    const source = error instanceof Error ? error : new Error(String(error))
    const tls = this.config.tls !== undefined || (this.config.redis !== undefined && /^rediss:/.test(this.configured))
    const hinted = withHint(source, {
      tls, clientCert: this.config.tls?.cert !== undefined, beforeFirstReply: this.beforeFirstReply, server: this.configured,
    })
    return redactError(hinted, this.config)
  }

}
