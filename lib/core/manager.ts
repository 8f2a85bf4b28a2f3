/**
 * The connection manager: owns the one Redis connection, decides for every call whether Redis
 * or the memory twin answers, and brings the kit back to Redis by itself after an outage.
 *
 * - ready: calls go to Redis. The watchdog bounds each one (a stall is noticed from the age of
 *   the oldest unanswered call, a slow Redis by commandTimeoutMs); a failed or unanswered call is
 *   answered from memory and the kit switches to degraded.
 * - connecting / degraded: calls never touch Redis; writes go to memory and to the journal.
 * - recovery: probes PING with capped, jittered backoff. Only a run of fast replies (and, after
 *   a flap, a longer one) starts recovery: a write check, the journal replayed batch by batch
 *   (replay.ts), and the switch to ready in the tick that sends the last batch.
 *
 * What a call that got no answer did is tracked until it is known: a late reply means it ran;
 * "not run" journals it; an unknown outcome journals it only if running it twice is harmless,
 * and is otherwise reported (`inDoubt` event, one log line per outage).
 */
import { EventEmitter } from 'node:events'
import { redactText, type KitConfig } from './config.js'
import { KitError } from './errors.js'
import type { Backend, InDoubtWrite, KitEvents, KitState } from '../types.js'
import { journalOf, type DualCall, type MemoryReason, type SteppedCall } from './calls.js'
import { FeatureContext } from './context.js'
import { isIdempotent, OutageJournal, type JournalWrite } from './journal.js'
import { MemoryStore } from './memory.js'
import { classify, HangError, replyCode } from './outage.js'
import { createRedisClient, describeClient, retryDelay, riskySettings } from './redis-client.js'
import type { RedisClient } from './redis-types.js'
import { Replayer } from './replay.js'
import { Tracked, Watchdog, within, type Verdict } from './watchdog.js'

/** Below this, a stall verdict trips on a healthy Redis answering a burst on a loaded machine. */
const STALL_FLOOR_MS = 100
/** Probes this fast in a row bring the kit back (one at the first connection). */
const GOOD_PROBES = 3
/** Pause between the probes of one run. */
const STREAK_INTERVAL_MS = 30
/** Going back to degraded within this long after recovering counts as a flap. */
const FLAP_WINDOW_MS = 10_000
const FIRST_HOLD_DOWN_MS = 1000
const MAX_HOLD_DOWN_MS = 30_000
const BAD_DATABASE = /DB index is out of range|invalid DB index/i

function noop(): void {}

/** A Redis reply about the data (WRONGTYPE, …) as a KitError the caller can match on. */
function dataError(error: unknown): unknown {
  if (replyCode(error) === 'WRONGTYPE') {
    return new KitError('ERR_KIT_WRONG_TYPE', `express-redis-kit: the key holds a different Redis type than this call works on (${(error as Error).message.split(' script:')[0]}). Use another key, or delete the old value first.`)
  }
  return error
}

/** One call in flight on Redis. */
class Pending<T, R> extends Tracked {
  private answered = false
  private answer: T | undefined
  resolve: (value: T) => void = noop
  reject: (error: unknown) => void = noop

  constructor(
    private readonly manager: ConnectionManager,
    private readonly feature: string,
    private readonly call: DualCall<T, R>,
    private readonly seq: number,
  ) {
    super()
  }

  ok(reply: R): void {
    const watchdog = this.manager.watchdog
    watchdog.done(this)
    const now = performance.now()
    watchdog.sample(now - this.started, now)
    if (this.answered) return // memory answered already; its effects stand
    if (this.call.fromRedis === undefined) { this.resolve(reply as unknown as T); return }
    try {
      this.resolve(this.call.fromRedis(reply))
    } catch (error) {
      this.reject(dataError(error))
    }
  }

  fail(error: unknown): void {
    this.manager.watchdog.done(this)
    const outcome = classify(error)
    if (outcome === 'data') {
      if (!this.answered) this.reject(dataError(error))
      return
    }
    this.manager.failed(error as Error)
    if (!this.answered) this.fromMemory(outcome)
    this.manager.settleUnknown(this.feature, this.call, this.answer as T, this.seq, outcome)
  }

  /** The watchdog gave up waiting: memory answers now; Redis' outcome is learned later. */
  override hang(): void {
    if (!this.answered) this.fromMemory('in-doubt')
  }

  private fromMemory(reason: MemoryReason): void {
    this.answered = true
    try {
      this.answer = this.call.memory(reason)
      this.resolve(this.answer)
    } catch (error) {
      this.reject(error)
    }
  }
}

/** What happened during the current outage, for the line logged when it ends. */
interface OutageReport {
  journalFull: Set<string>
  inDoubt: number
}

export class ConnectionManager extends EventEmitter<KitEvents> {
  readonly config: KitConfig
  readonly journal: OutageJournal
  readonly watchdog: Watchdog
  /** Which server the kit uses, without secrets, for logs and health output. */
  readonly server: string
  private readonly replayer: Replayer
  private currentState: KitState
  private stateSince = new Date()
  private error: Error | undefined
  private readonly client: RedisClient | undefined
  private readonly ownsClient: boolean
  private readonly memories = new Map<string, MemoryStore>()
  private readonly contexts = new Map<string, FeatureContext>()
  private readonly features = new Set<string>()
  private probeTimer: NodeJS.Timeout | undefined
  private connectTimer: NodeJS.Timeout | undefined
  private probeAttempt = 0
  private probing = false
  private pendingPing: Promise<unknown> | undefined
  private streak = 0
  private streakStarted = 0
  private holdDownMs = 0
  /** When the kit last came back from an outage (the first connection is not a comeback). */
  private readyAt = Number.NEGATIVE_INFINITY
  private closed = false
  private selectFailed: Error | undefined
  private outage: OutageReport = { journalFull: new Set(), inDoubt: 0 }
  private settleFirstAttempt: () => void = () => {}
  private readonly firstAttempt: Promise<void>

  constructor(config: KitConfig) {
    super()
    this.config = config
    this.journal = new OutageJournal(config.journal, (feature, key) => this.warnJournalFull(feature, key))
    this.replayer = new Replayer({
      keyPrefix: config.keyPrefix,
      journal: this.journal,
      stepTimeoutMs: Math.max(config.commandTimeoutMs, 1000),
    })
    this.watchdog = new Watchdog(Math.min(STALL_FLOOR_MS, config.commandTimeoutMs), config.commandTimeoutMs, this.onHang)
    this.firstAttempt = new Promise((resolve) => { this.settleFirstAttempt = resolve })
    if (!config.enabled) {
      this.currentState = 'disabled'
      this.ownsClient = false
      this.server = 'none (disabled)'
      this.settleFirstAttempt()
      this.log('info', 'Redis is disabled (ENABLE_REDIS=false or enabled: false); every feature serves from memory')
      return
    }
    this.currentState = 'connecting'
    this.ownsClient = config.redis === undefined
    this.client = config.redis ?? createRedisClient(config)
    this.server = this.ownsClient ? config.redactedUrl : describeClient(this.client)
    if (!this.ownsClient) this.inspectUserClient(this.client)
    this.attach(this.client)
    this.connectTimer = setTimeout(() => {
      this.degrade(new Error(`Redis was not ready within connectTimeoutMs (${config.connectTimeoutMs} ms)`))
    }, config.connectTimeoutMs)
    this.connectTimer.unref()
    if (this.client.status === 'ready') void this.probe()
    else if (this.client.status === 'wait' || this.client.status === 'end') this.client.connect().catch(() => {})
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
   * Runs a call on Redis when it is ready, else on memory. Not `async`: the hot path costs one
   * promise and one tracking record.
   */
  run<T, R = T>(feature: string, call: DualCall<T, R>): Promise<T> {
    const client = this.client
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
   * A call of several round trips: each is bounded by commandTimeoutMs; on an outage the memory
   * half answers (never journaled: such calls are reads or idempotent clears handled by the feature).
   */
  async runStepped<T>(call: SteppedCall<T>): Promise<T> {
    const client = this.client
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

  /**
   * The Redis half of a call failed on an outage, or got no answer: the write is journaled if
   * Redis did not run it, and, when that cannot be known, only if running it twice is harmless.
   */
  settleUnknown<T, R>(feature: string, call: DualCall<T, R>, answer: T, seq: number, outcome: 'not-run' | 'in-doubt'): void {
    if (call.journal === undefined || this.currentState === 'disabled' || this.closed) return
    const write = journalOf(call, answer)
    if (!write) return
    if (outcome === 'not-run' || isIdempotent(write)) {
      this.journal.recordEarlier(feature, write, seq)
      return
    }
    this.outage.inDoubt += 1
    const doubt: InDoubtWrite = write.op === 'incrby'
      ? { feature, op: 'incrby', key: write.key, amount: write.delta }
      : { feature, op: 'hits', key: (write as { key: string }).key, amount: (write as { delta: number }).delta }
    this.emit('inDoubt', doubt)
  }

  /** A Redis call failed with an outage error. */
  failed(error: Error): void {
    this.degrade(error)
  }

  private readonly onHang = (verdict: Verdict, waitedMs: number): void => {
    const ms = Math.round(waitedMs)
    this.degrade(new HangError(verdict === 'stalled'
      ? `Redis stopped answering (no reply for ${ms} ms while calls were waiting)`
      : `a call waited ${ms} ms, the command timeout (commandTimeoutMs)`))
  }

  /** A live PING with its own timeout, for `/health/redis`. Resolves with the latency in ms. */
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
    clearTimeout(this.probeTimer)
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
    this.pendingPing = undefined
    this.degrade(this.error ?? new Error('Redis connection closed'))
  }

  private readonly onReady = (): void => {
    void this.probe()
  }

  private degrade(error: Error): void {
    if (this.closed) return
    this.error = this.redact(error)
    this.streak = 0
    if (this.currentState === 'ready' || this.currentState === 'connecting') {
      const now = performance.now()
      if (this.currentState === 'ready') {
        // Back to degraded soon after recovering: ask for a longer run of good probes next time.
        this.holdDownMs = now - this.readyAt < FLAP_WINDOW_MS
          ? Math.min(MAX_HOLD_DOWN_MS, this.holdDownMs === 0 ? FIRST_HOLD_DOWN_MS : this.holdDownMs * 2) : 0
      }
      this.outage = { journalFull: new Set(), inDoubt: 0 }
      this.setState('degraded', this.error)
    }
    this.scheduleProbe(retryDelay(this.probeAttempt++, this.config.maxRetryDelayMs))
  }

  private scheduleProbe(delayMs: number): void {
    if (this.closed || this.probing || this.probeTimer !== undefined || this.currentState === 'ready') return
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined
      void this.probe()
    }, delayMs)
    this.probeTimer.unref()
  }

  /** One PING; a run of fast ones starts recovery. Never more than one PING in flight. */
  private async probe(): Promise<void> {
    const client = this.client
    if (this.closed || this.probing || !client || this.currentState === 'ready') return
    clearTimeout(this.probeTimer)
    this.probeTimer = undefined
    if (client.status !== 'ready') {
      if (client.status === 'end' && !this.ownsClient) client.connect().catch(() => {})
      return // the client's 'ready' event probes again
    }
    this.probing = true
    let next: number
    try {
      next = await this.probeOnce(client)
    } catch (error) {
      this.error = this.redact(error)
      this.streak = 0
      next = retryDelay(this.probeAttempt++, this.config.maxRetryDelayMs)
    } finally {
      this.probing = false
    }
    if (this.state !== 'ready') this.scheduleProbe(next)
  }

  /** Returns the delay before the next probe; throws when the probe or the recovery failed. */
  private async probeOnce(client: RedisClient): Promise<number> {
    const started = performance.now()
    this.pendingPing ??= client.ping().finally(() => { this.pendingPing = undefined })
    await within(this.pendingPing, this.config.commandTimeoutMs, 'PING')
    const now = performance.now()
    const latency = now - started
    this.watchdog.sample(latency, now)
    if (this.selectFailed) throw this.selectFailed
    if (this.closed) return 0
    if (latency > this.config.commandTimeoutMs / 2) {
      // Answering, but slowly: coming back now would only time out again.
      this.streak = 0
      return retryDelay(this.probeAttempt++, this.config.maxRetryDelayMs)
    }
    if (this.streak === 0) this.streakStarted = now
    this.streak += 1
    const needed = this.currentState === 'connecting' ? 1 : GOOD_PROBES
    if (this.streak < needed || now - this.streakStarted < this.holdDownMs) return STREAK_INTERVAL_MS
    await this.recover(client)
    return 0
  }

  /** Write check, awaited replay, then the last batch and the switch to ready in one tick. */
  private async recover(client: RedisClient): Promise<void> {
    try {
      await this.replayer.checkWrites(client)
      await this.replayer.drain(client)
    } catch (error) {
      this.streak = 0
      throw error
    }
    if (this.closed || client.status !== 'ready') return
    const awaited = this.replayer.takeReport()
    const copies: Promise<unknown>[] = []
    const sent = this.replayer.sendRest(client, (copy) => { copies.push(copy); this.trackInternal(copy) })
    this.error = undefined
    this.probeAttempt = 0
    this.streak = 0
    if (this.currentState === 'degraded') this.readyAt = performance.now()
    this.setState('ready', undefined, awaited.applied + sent)
    // Rejections of the last batches are known only once they are answered: one line for all.
    void Promise.allSettled(copies).then(() => {
      const late = this.replayer.takeReport()
      const failed = awaited.failed + late.failed
      if (failed === 0) return
      this.log('warn', `ERR_KIT_REPLAY_REJECTED: Redis rejected ${failed} of the ${awaited.applied + sent} write(s) replayed after the outage `
        + `(first: ${redactText(awaited.firstError ?? late.firstError ?? '', this.config)}); those writes are lost. `
        + 'Another program changed those keys meanwhile (e.g. to another type).')
    })
  }

  /** Watches a replay batch sent with the switch to ready like any call: a hang degrades the kit. */
  private trackInternal(copy: Promise<unknown>): void {
    const tracked = new Tracked()
    this.watchdog.track(tracked)
    copy.then(() => {
      this.watchdog.done(tracked)
      const now = performance.now()
      this.watchdog.sample(now - tracked.started, now)
    }, (error: unknown) => {
      this.watchdog.done(tracked)
      if (classify(error) !== 'data') this.failed(error as Error)
      else this.log('warn', `a replayed batch was rejected: ${this.redact(error).message}`)
    })
  }

  private setState(to: KitState, error?: Error, replayed = 0): void {
    const from = this.currentState
    if (from === to) return
    this.currentState = to
    this.stateSince = new Date()
    clearTimeout(this.connectTimer)
    if (to === 'ready') {
      this.log('info', `Redis ${from === 'degraded' ? 'is back' : 'connected'} at ${this.server}; features use Redis${this.describeOutage(replayed)}`)
    } else if (to === 'degraded') {
      this.log('warn', `Redis unavailable at ${this.server} (${error?.message ?? 'unknown error'}); serving from memory until it answers again`)
    }
    this.settleFirstAttempt()
    this.emit('stateChange', to, from)
    if (to === 'degraded' && error) this.emit('degraded', error)
    if (to === 'ready' && from === 'degraded') this.emit('recovered')
  }

  /** The outage's replay in a few words, or '' when there was nothing to tell. */
  private describeOutage(replayed: number): string {
    const parts: string[] = []
    if (replayed > 0) parts.push(`replayed ${replayed} write(s) made during the outage`)
    if (this.outage.inDoubt > 0) {
      parts.push(`${this.outage.inDoubt} increment(s) were in flight when the connection failed, so Redis may or may not have applied them (see the inDoubt event)`)
    }
    if (this.outage.journalFull.size > 0) parts.push(`the journal was full for ${[...this.outage.journalFull].join(', ')}`)
    this.outage = { journalFull: new Set(), inDoubt: 0 }
    return parts.length === 0 ? '' : `; ${parts.join('; ')}`
  }

  private inspectUserClient(client: RedisClient): void {
    const { risks } = riskySettings(client)
    if (risks.length > 0) {
      this.log('warn', `ERR_KIT_CLIENT_SETTINGS: the ioredis client passed as \`redis\` has ${risks.join('; ')}. `
        + `The kit bounds every call by commandTimeoutMs itself, but for fail-fast behaviour create it with `
        + `{ enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false }.`)
    }
  }

  private warnJournalFull(feature: string, key: string): void {
    if (this.outage.journalFull.has(feature)) return
    this.outage.journalFull.add(feature)
    const { maxEntries, maxBytes } = this.config.journal
    this.log('warn', `ERR_KIT_JOURNAL_FULL: the outage journal of ${feature} is full (journal.maxEntries ${maxEntries}, `
      + `journal.maxBytes ${maxBytes}); further writes (first: ${redactText(key, this.config)}) are kept in memory only and will not reach Redis. `
      + 'Raise the journal limits if outages last this long. Logged once per outage.')
  }

  private redact(error: unknown): Error {
    const source = error instanceof Error ? error : new Error(String(error))
    const message = redactText(source.message, this.config)
    if (message === source.message) return source
    const copy = new Error(message)
    copy.name = source.name
    return copy
  }

  private log(level: 'info' | 'warn', message: string): void {
    this.config.logger?.[level](`[express-redis-kit] ${message}`)
  }
}

