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
import type { Backend, InDoubtWrite, KitEvents, KitState } from '../types.js'
import { journalOf, type DualCall, type MemoryReason, type SteppedCall } from './calls.js'
import { redactText, type KitConfig } from './config.js'
import { FeatureContext } from './context.js'
import { isIdempotent, OutageJournal, type JournalWrite } from './journal.js'
import { Log } from './log.js'
import { MemoryStore } from './memory.js'
import { classify, HangError } from './outage.js'
import { dataError, Pending, type PendingHost } from './pending.js'
import { Recovery, type RecoveryHost } from './recovery.js'
import { createRedisClient, describeClient, riskySettings } from './redis-client.js'
import { KitError } from './errors.js'
import type { RedisClient } from './redis-types.js'
import { Replayer, type ReplayReport } from './replay.js'
import { Tracked, Watchdog, within, type Verdict } from './watchdog.js'

function closedError(): KitError {
  return new KitError('ERR_KIT_CLOSED', 'express-redis-kit: the kit was closed (kit.close()); close the HTTP server before the kit, so no request reaches it afterwards.')
}

/** Below this, a stall verdict trips on a healthy Redis answering a burst on a loaded machine. */
const STALL_FLOOR_MS = 100
const BAD_DATABASE = /DB index is out of range|invalid DB index/i

export class ConnectionManager extends EventEmitter<KitEvents> implements PendingHost {
  readonly config: KitConfig
  readonly log: Log
  readonly journal: OutageJournal
  readonly watchdog: Watchdog
  /** Which server the kit uses, without secrets, for logs and health output. */
  readonly server: string
  private readonly replayer: Replayer
  private readonly recovery: Recovery | undefined
  private readonly client: RedisClient | undefined
  private currentState: KitState
  private stateSince = new Date()
  private error: Error | undefined
  private readonly memories = new Map<string, MemoryStore>()
  private readonly contexts = new Map<string, FeatureContext>()
  private readonly features = new Set<string>()
  private readonly resumeHooks: (() => void)[] = []
  private connectTimer: NodeJS.Timeout | undefined
  private closed = false
  private ownsClient = false
  private selectFailed: Error | undefined
  /** Increments reported in doubt during the current outage, for the comeback's log line. */
  private inDoubt = 0
  private settleFirstAttempt: () => void = () => {}
  private readonly firstAttempt: Promise<void>

  constructor(config: KitConfig) {
    super()
    this.config = config
    this.log = new Log(config.logger, (text) => redactText(text, config))
    this.journal = new OutageJournal(config.journal, (feature, key) => this.journalFull(feature, key))
    this.replayer = new Replayer({ keyPrefix: config.keyPrefix, journal: this.journal, stepTimeoutMs: Math.max(config.commandTimeoutMs, 1000) })
    this.watchdog = new Watchdog(Math.min(STALL_FLOOR_MS, config.commandTimeoutMs), config.commandTimeoutMs, this.onHang)
    this.firstAttempt = new Promise((resolve) => { this.settleFirstAttempt = resolve })
    if (!config.enabled) {
      this.currentState = 'disabled'
      this.server = 'none (disabled)'
      this.settleFirstAttempt()
      this.log.info('Redis is disabled (ENABLE_REDIS=false or enabled: false); every feature serves from memory')
      return
    }
    this.currentState = 'connecting'
    this.ownsClient = config.redis === undefined
    const client = config.redis ?? createRedisClient(config)
    this.client = client
    this.server = this.ownsClient ? config.redactedUrl : describeClient(client)
    if (!this.ownsClient) this.inspectUserClient(client)
    this.recovery = new Recovery(this.recoveryHost(client))
    this.attach(client)
    this.connectTimer = setTimeout(() => {
      this.degrade(new Error(`Redis was not ready within connectTimeoutMs (${config.connectTimeoutMs} ms)`))
    }, config.connectTimeoutMs)
    this.connectTimer.unref()
    if (client.status === 'ready') this.recovery.connectionReady()
    else if (client.status === 'wait' || client.status === 'end') client.connect().catch(() => {})
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
    let store = this.memories.get(feature)
    if (!store) {
      store = new MemoryStore(this.config.memory)
      this.memories.set(feature, store)
    }
    return store
  }

  /** The narrow handle a feature works through (one per feature name). */
  context(feature: string, namespace: string): FeatureContext {
    let context = this.contexts.get(feature)
    if (!context) {
      context = new FeatureContext(this, feature, namespace)
      this.contexts.set(feature, context)
    }
    return context
  }

  /** Records that a feature is in use, for the `/health` summary. */
  registerFeature(name: string): void {
    this.features.add(name)
  }

  get featureNames(): string[] {
    return [...this.features]
  }

  /**
   * Runs `hook` each time the kit switches back to Redis, right after the outage's last replay
   * batches were written: anything it sends reaches Redis after every replayed write.
   */
  onResume(hook: () => void): void {
    this.resumeHooks.push(hook)
  }

  /** Runs a call on Redis when it is ready, else on memory. Not `async`: one promise on the hot path. */
  run<T, R = T>(feature: string, call: DualCall<T, R>): Promise<T> {
    const client = this.client
    if (this.closed) return Promise.reject(closedError())
    if (this.currentState !== 'ready' || client === undefined) {
      try {
        return Promise.resolve(this.fromMemory(feature, call, 'not-tried'))
      } catch (error) {
        return Promise.reject(error)
      }
    }
    let sent: Promise<R>
    try {
      sent = call.redis(client)
    } catch (error) {
      return Promise.reject(dataError(error))
    }
    const pending = new Pending(this, feature, call, this.journal.seq)
    const answer = new Promise<T>((resolve, reject) => { pending.resolve = resolve; pending.reject = reject })
    this.watchdog.track(pending)
    sent.then((reply) => pending.ok(reply), (error: unknown) => pending.fail(error))
    return answer
  }

  /**
   * A call of several round trips (SCAN loops): each is bounded by commandTimeoutMs; on an
   * outage the memory half answers and journals what it must itself.
   */
  async runStepped<T>(call: SteppedCall<T>): Promise<T> {
    const client = this.client
    if (this.closed) throw closedError()
    if (this.currentState !== 'ready' || client === undefined) return call.memory('not-tried')
    const timeout = this.config.commandTimeoutMs
    try {
      return await call.redis(client, (roundTrip) => within(roundTrip, timeout, 'Redis'))
    } catch (error) {
      const outcome = classify(error)
      if (outcome === 'data') throw dataError(error)
      this.failed(error as Error)
      return call.memory(outcome)
    }
  }

  /** Journals a feature's write directly (e.g. a clear made while Redis is away). */
  record(feature: string, write: JournalWrite): boolean {
    if (this.currentState === 'disabled' || this.closed) return false
    return this.journal.record(feature, write)
  }

  private fromMemory<T, R>(feature: string, call: DualCall<T, R>, reason: MemoryReason): T {
    const answer = call.memory(reason)
    if (call.journal !== undefined && this.currentState !== 'disabled' && !this.closed) {
      const write = journalOf(call, answer)
      if (write) this.journal.record(feature, write)
    }
    return answer
  }

  settleUnknown<T, R>(feature: string, call: DualCall<T, R>, answer: T, seq: number, outcome: 'not-run' | 'in-doubt'): void {
    if (call.journal === undefined || this.currentState === 'disabled' || this.closed) return
    const write = journalOf(call, answer)
    if (!write) return
    if (outcome === 'not-run' || isIdempotent(write)) {
      this.journal.recordEarlier(feature, write, seq)
      return
    }
    if (write.op !== 'incrby' && write.op !== 'hits') return
    this.inDoubt += 1
    const doubt: InDoubtWrite = { feature, op: write.op, key: write.key, amount: write.delta }
    this.emit('inDoubt', doubt)
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
    if (client.status === 'ready') {
      await within(client.quit(), this.config.commandTimeoutMs, 'QUIT').catch(() => client.disconnect())
    } else {
      client.disconnect()
    }
  }

  private recoveryHost(client: RedisClient): RecoveryHost {
    return {
      client,
      ownsClient: this.ownsClient,
      watchdog: this.watchdog,
      replayer: this.replayer,
      commandTimeoutMs: this.config.commandTimeoutMs,
      maxRetryDelayMs: this.config.maxRetryDelayMs,
      wantsRedis: () => !this.closed && (this.currentState === 'connecting' || this.currentState === 'degraded'),
      initial: () => this.currentState === 'connecting',
      blocked: () => this.selectFailed,
      noteError: (error) => { this.error = this.redact(error) },
      resumed: (awaited, sent, lastBatches) => this.resumed(awaited, sent, lastBatches),
      track: (copy) => this.trackBatch(copy),
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
  }

  private readonly onClose = (): void => {
    if (this.closed) return
    this.recovery?.connectionClosed()
    this.degrade(this.error ?? new Error('Redis connection closed'))
  }

  private readonly onReady = (): void => {
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
      this.log.warn('ERR_KIT_REPLAY_REJECTED', `Redis rejected ${failed} of the ${awaited.applied + sent} write(s) replayed after the outage `
        + `(first: ${awaited.firstError ?? late.firstError ?? ''}); those writes are lost. `
        + 'Another program changed those keys meanwhile (e.g. to another type).')
    })
  }

  /** Watches a replay batch sent with the switch to ready like any call: a hang degrades the kit. */
  private trackBatch(copy: Promise<unknown>): void {
    const tracked = new Tracked()
    this.watchdog.track(tracked)
    copy.then(() => {
      this.watchdog.done(tracked)
      const now = performance.now()
      this.watchdog.sample(now - tracked.started, now)
    }, (error: unknown) => {
      this.watchdog.done(tracked)
      if (classify(error) !== 'data') this.failed(error as Error)
    })
  }

  private setState(to: KitState, error?: Error, replayed = 0): void {
    const from = this.currentState
    if (from === to) return
    this.currentState = to
    this.stateSince = new Date()
    clearTimeout(this.connectTimer)
    if (to === 'ready') {
      this.log.info(`Redis ${from === 'degraded' ? 'is back' : 'connected'} at ${this.server}; features use Redis${this.describeOutage(replayed)}`)
      for (const hook of this.resumeHooks) hook()
    } else if (to === 'degraded') {
      this.log.notice(`Redis unavailable at ${this.server} (${error?.message ?? 'unknown error'}); serving from memory until it answers again`)
      this.log.forget('outage')
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

  private inspectUserClient(client: RedisClient): void {
    const { risks } = riskySettings(client)
    if (risks.length === 0) return
    this.log.warn('ERR_KIT_CLIENT_SETTINGS', `the ioredis client passed as \`redis\` has ${risks.join('; ')}. `
      + 'The kit bounds every call by commandTimeoutMs itself, but for fail-fast behaviour create it with '
      + '{ enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false }.')
  }

  private journalFull(feature: string, key: string): void {
    const { maxEntries, maxBytes } = this.config.journal
    this.log.warnOnce('ERR_KIT_JOURNAL_FULL', `the outage journal of ${feature} is full (journal.maxEntries ${maxEntries}, `
      + `journal.maxBytes ${maxBytes}); further writes (first: ${key}) are kept in memory only and will not reach Redis. `
      + 'Raise the journal limits if outages last this long. Logged once per outage.', `${feature}\0outage`)
  }

  private redact(error: unknown): Error {
    const source = error instanceof Error ? error : new Error(String(error))
    const message = redactText(source.message, this.config)
    if (message === source.message) return source
    const copy = new Error(message)
    copy.name = source.name
    return copy
  }
}
