/**
 * The connection manager: owns the one Redis connection, decides for every call whether Redis
 * or the memory twin answers, and brings the kit back to Redis by itself after an outage.
 *
 * - ready: calls go to Redis, bounded by the command timeout; an outage error or a timeout
 *   answers that call from memory and switches to degraded.
 * - connecting / degraded: calls never touch Redis; writes go to memory and to the journal.
 *   A probe PINGs with capped, jittered backoff; after a PING succeeds the journal is replayed
 *   and only then does the state become ready, so no newer write is overtaken by an older one.
 */
import { EventEmitter } from 'node:events'
import { redactText, type KitConfig } from './config.js'
import { KitError } from './errors.js'
import { OutageJournal, queueReplay, type JournalEntry, type Write } from './journal.js'
import { MemoryStore } from './memory.js'
import { createRedisClient, retryDelay, riskySettings } from './redis-client.js'
import type { RedisClient } from './redis-types.js'
import type { Backend, KitEvents, KitState } from './types.js'

/** One call, implemented twice. The manager picks which implementation answers. */
export interface DualCall<T> {
  redis: (client: RedisClient) => Promise<T>
  memory: () => T
  /** The write to replay once Redis is back, when `memory` answered instead of Redis. */
  journal?: Write
}

const AVAILABILITY_REPLIES = /^(NOAUTH|WRONGPASS|LOADING|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|BUSY|MISCONF|OOM|NOREPLICAS)\b/
/** Refusals of writes only: such a Redis still answers PING. */
const WRITE_REFUSALS = /^(OOM|READONLY|MISCONF|NOREPLICAS)\b/
const BAD_DATABASE = /DB index is out of range|invalid DB index/i
const TRANSPORT_ERRORS = /timed out|isn't writeable|Connection is closed|Connection closed|connect|socket|ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/i

/** Is this Redis being unavailable (serve from memory), rather than a reply about the data? */
export function isOutage(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof KitError) return false
  if (error.name === 'ReplyError') return AVAILABILITY_REPLIES.test(error.message)
  return error.name === 'MaxRetriesPerRequestError' || error.name === 'ClusterAllFailedError'
    || TRANSPORT_ERRORS.test(`${error.message} ${(error as { code?: string }).code ?? ''}`)
}

/**
 * The write certainly did not run: ioredis refused to send it (the socket was already down), or
 * Redis refused to run it (OOM, READONLY, MISCONF, LOADING … are checked before a command runs).
 */
export function neverRan(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error.name === 'ReplyError') return AVAILABILITY_REPLIES.test(error.message)
  return /isn't writeable/.test(error.message)
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export class ConnectionManager extends EventEmitter<KitEvents> {
  readonly config: KitConfig
  readonly journal: OutageJournal
  private currentState: KitState
  private stateSince = new Date()
  private error: Error | undefined
  private readonly client: RedisClient | undefined
  private readonly ownsClient: boolean
  /** Set when the client cannot be trusted to time commands out by itself. */
  private readonly raceTimeoutMs: number | undefined
  private readonly memories = new Map<string, MemoryStore>()
  private readonly features = new Set<string>()
  private probeTimer: NodeJS.Timeout | undefined
  private connectTimer: NodeJS.Timeout | undefined
  private probeAttempt = 0
  private probing = false
  private closed = false
  private journalOverflowed = false
  private selectFailed: Error | undefined
  private settleFirstAttempt: () => void = () => {}
  private readonly firstAttempt: Promise<void>

  constructor(config: KitConfig) {
    super()
    this.config = config
    this.journal = new OutageJournal(config.journal.maxEntries, (key) => this.warnJournalOverflow(key))
    this.firstAttempt = new Promise((resolve) => { this.settleFirstAttempt = resolve })
    if (!config.enabled) {
      this.currentState = 'disabled'
      this.ownsClient = false
      this.settleFirstAttempt()
      this.log('info', 'Redis is disabled (ENABLE_REDIS=false or enabled: false); every feature serves from memory')
      return
    }
    this.currentState = 'connecting'
    this.ownsClient = config.redis === undefined
    this.client = config.redis ?? createRedisClient(config)
    this.raceTimeoutMs = this.ownsClient ? undefined : this.inspectUserClient(this.client)
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

  /** Records that a feature is in use, for the `/health` summary. */
  registerFeature(name: string): void {
    this.features.add(name)
  }

  get featureNames(): string[] {
    return [...this.features]
  }

  /**
   * Runs a call on Redis when it is ready, else (or when Redis fails) on memory. Not `async`:
   * on the hot path the Redis promise is returned with one rejection handler and nothing else.
   */
  run<T>(call: DualCall<T>): Promise<T> {
    const client = this.client
    try {
      if (this.currentState !== 'ready' || client === undefined || this.closed) return Promise.resolve(this.fromMemory(call))
      const pending = call.redis(client)
      const bounded = this.raceTimeoutMs === undefined ? pending : withTimeout(pending, this.raceTimeoutMs, 'Command')
      return bounded.then(undefined, (error: unknown) => this.afterRedisFailure(error, call))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  private afterRedisFailure<T>(error: unknown, call: DualCall<T>): T {
    if (!isOutage(error)) throw error
    this.degrade(error as Error)
    // A write that was sent and timed out may still run on Redis: journaling it too would
    // apply it twice, so only writes that certainly never ran are replayed.
    return neverRan(error) ? this.fromMemory(call) : call.memory()
  }

  private fromMemory<T>(call: DualCall<T>): T {
    const result = call.memory()
    if (call.journal && this.currentState !== 'disabled' && !this.closed) this.journal.record(call.journal)
    return result
  }

  /** Journals a feature-defined write (e.g. a cache tag invalidation) for replay after an outage. */
  recordCustom(id: string, replay: (client: RedisClient) => Promise<unknown>): void {
    if (this.currentState !== 'disabled' && !this.closed) this.journal.recordCustom(id, replay)
  }

  /** A live PING with its own timeout, for `/health/redis`. Resolves with the latency in ms. */
  async ping(timeoutMs = this.config.healthTimeoutMs): Promise<number> {
    const client = this.client
    if (!client || this.closed) throw new Error('Redis is not configured')
    if (client.status !== 'ready') throw this.error ?? new Error(`Redis connection is ${client.status}`)
    const started = process.hrtime.bigint()
    try {
      await withTimeout(client.ping(), timeoutMs, 'PING')
    } catch (error) {
      throw this.redact(error)
    }
    return Number(process.hrtime.bigint() - started) / 1e6
  }

  /** Ends the connection (if the kit created it) and every timer; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.probeTimer)
    clearTimeout(this.connectTimer)
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
      await withTimeout(client.quit(), this.config.commandTimeoutMs, 'QUIT').catch(() => client.disconnect())
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
    }
  }

  private readonly onConnect = (): void => {
    this.selectFailed = undefined
  }

  private readonly onClose = (): void => {
    if (this.closed) return
    this.degrade(this.error ?? new Error('Redis connection closed'))
  }

  private readonly onReady = (): void => {
    void this.probe()
  }

  private degrade(error: Error): void {
    if (this.closed) return
    this.error = this.redact(error)
    if (this.currentState === 'ready' || this.currentState === 'connecting') {
      this.journalOverflowed = false
      this.setState('degraded', this.error)
    }
    this.scheduleProbe()
  }

  private scheduleProbe(): void {
    if (this.closed || this.probing || this.probeTimer !== undefined) return
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined
      void this.probe()
    }, retryDelay(this.probeAttempt++, this.config.maxRetryDelayMs))
    this.probeTimer.unref()
  }

  /** PING, replay the journal, then go back to Redis; on any failure try again later. */
  private async probe(): Promise<void> {
    const client = this.client
    if (this.closed || this.probing || !client || this.currentState === 'ready') return
    clearTimeout(this.probeTimer)
    this.probeTimer = undefined
    this.probing = true
    try {
      if (client.status === 'ready') {
        await withTimeout(client.ping(), this.config.commandTimeoutMs, 'PING')
        if (this.selectFailed) throw this.selectFailed
        if (this.closed) return
        // A Redis that refused writes (full, a read-only replica, a failing disk) answers PING all
        // the same: a write that expires at once tells whether the journal can go back yet.
        if (this.error && WRITE_REFUSALS.test(this.error.message)) {
          await withTimeout(client.set(this.key('kit:', 'write-probe'), '1', 'PX', 1000), this.config.commandTimeoutMs, 'Write probe')
        }
        // A replay refused or cut off puts the kit back to degraded: the probe below tries again.
        await this.replayAndResume(client)
      } else if (client.status === 'end' && !this.ownsClient) {
        client.connect().catch(() => {})
      }
    } catch (error) {
      this.degrade(error as Error)
    } finally {
      this.probing = false
    }
    if (this.state !== 'ready') this.scheduleProbe()
  }

  /**
   * Writes every journaled command to the socket and switches to ready in the same tick. Redis runs
   * one connection's commands in order, so no request made after the switch can overtake a
   * replayed write, and the switch does not wait for replies (under steady traffic the journal
   * would otherwise never be empty). Writes whose replay fails on an outage go back to the journal.
   */
  private async replayAndResume(client: RedisClient): Promise<void> {
    const entries = this.journal.take()
    const replies = entries.map((entry) => this.replay(client, entry))
    this.error = undefined
    this.setState('ready')
    const results = await Promise.allSettled(replies)
    const failed: JournalEntry[] = []
    let outage: unknown
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') return
      if (isOutage(result.reason)) {
        failed.push(entries[i] as JournalEntry)
        outage ??= result.reason
      } else {
        this.log('warn', `could not replay a write made during the outage: ${this.redact(result.reason).message}`)
      }
    })
    if (failed.length > 0) {
      this.journal.restore(failed)
      this.degrade(outage as Error)
    } else {
      this.probeAttempt = 0 // the back-off grows while replays keep failing (a Redis refusing writes)
    }
  }

  /** Sends one entry's commands synchronously (the returned promise only waits for replies). */
  private async replay(client: RedisClient, entry: JournalEntry): Promise<void> {
    const timeout = Math.max(this.config.commandTimeoutMs, 1000)
    if (entry.kind === 'custom') {
      await withTimeout(entry.replay(client), timeout, 'Replay')
      return
    }
    const multi = client.multi()
    queueReplay(entry, {
      set: (key, value, ttlMs) => { if (ttlMs === undefined) multi.set(key, value); else multi.set(key, value, 'PX', Math.ceil(ttlMs)) },
      del: (key) => { multi.del(key) },
      incrby: (key, delta) => { multi.incrby(key, delta) },
      pexpireat: (key, at) => { multi.pexpireat(key, at) },
    })
    const replies = await withTimeout(multi.exec(), timeout, 'Replay').catch((error: unknown) => {
      // A command Redis refused while queueing (OOM, READONLY …) aborts the whole MULTI with
      // EXECABORT: the refusal is what says whether to keep the entry for the next attempt.
      throw (error as { previousErrors?: unknown[] }).previousErrors?.[0] ?? error
    })
    const failure = replies?.find(([error]) => error)?.[0]
    if (failure) throw failure
  }

  private setState(to: KitState, error?: Error): void {
    const from = this.currentState
    if (from === to) return
    this.currentState = to
    this.stateSince = new Date()
    clearTimeout(this.connectTimer)
    if (to === 'ready') {
      this.log('info', `Redis ${from === 'degraded' ? 'is back' : 'connected'} at ${this.config.redactedUrl}; features use Redis`)
    } else if (to === 'degraded') {
      this.log('warn', `Redis unavailable at ${this.config.redactedUrl} (${error?.message ?? 'unknown error'}); serving from memory until it answers again`)
    }
    this.settleFirstAttempt()
    this.emit('stateChange', to, from)
    if (to === 'degraded' && error) this.emit('degraded', error)
    if (to === 'ready' && from === 'degraded') this.emit('recovered')
  }

  private inspectUserClient(client: RedisClient): number | undefined {
    const { risks, commandTimeout } = riskySettings(client)
    if (risks.length > 0) {
      this.log('warn', `ERR_KIT_CLIENT_SETTINGS: the ioredis client passed as \`redis\` has ${risks.join('; ')}. `
        + `The kit bounds every call by commandTimeoutMs itself, but for fail-fast behaviour create it with `
        + `{ enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: ${this.config.commandTimeoutMs}, autoResendUnfulfilledCommands: false }.`)
    }
    return commandTimeout !== undefined && commandTimeout <= this.config.commandTimeoutMs
      ? undefined : this.config.commandTimeoutMs
  }

  private warnJournalOverflow(key: string): void {
    if (this.journalOverflowed) return
    this.journalOverflowed = true
    this.log('warn', `outage journal is full (journal.maxEntries = ${this.config.journal.maxEntries}); `
      + `writes to further keys (first: ${this.redact(new Error(key)).message}) are kept in memory only and will not reach Redis`)
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
