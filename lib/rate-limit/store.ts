/**
 * FailoverRateLimitStore: express-rate-limit's Store, answered by rate-limit-redis over the kit's
 * connection while Redis is ready and by the kit's memory twin while it is not. The connection
 * manager picks one per call; this file only says what each side does.
 *
 * Hits counted in memory during an outage are journaled per client key as "hits in a window
 * ending at …" and, once Redis answers again, added to the client's window in Redis if that
 * window is still open (exactly once: see core/replay.ts). A hit whose Redis call was sent and
 * got no answer is never replayed: it may have counted already (it is reported as in doubt).
 *
 * Counts in memory live in two tiers, each bounded like every memory twin: clients with hits left,
 * and clients that used up their limit. A flood of new clients evicts the least recently seen of
 * the first tier only, so it cannot reset the count of a client being held back (a brute force on
 * one account outlasts any number of requests for other keys).
 */
import type { ClientRateLimitInfo, Options as ExpressRateLimitOptions, Store } from 'express-rate-limit'
import { RedisStore } from 'rate-limit-redis'
import type { FeatureContext } from '../core/context.js'
import type { JournalWrite } from '../core/journal.js'
import type { MemoryStore } from '../core/memory.js'
import { isOutage, NotSentError } from '../core/outage.js'
import { rateLimitCommands } from './commands.js'
import type { RedisDownPolicy } from './options.js'

export interface FailoverRateLimitStoreOptions {
  /** The limiter's name; its keys are `<keyPrefix>rate:<name>:`. */
  name: string
  onRedisDown: RedisDownPolicy
}

/** What kit.rateLimit() tells its store about the limit, which express-rate-limit may only see as a function. */
export interface MemoryLimit {
  /** The limit as a number, when it is one (else the middleware reports used-up clients). */
  limit: number | undefined
  /** During an outage each instance allows `Math.ceil(limit / instances)`. */
  instances: number
}

export class FailoverRateLimitStore implements Store {
  /** Read by express-rate-limit's double-count check: keys of different limiters never clash. */
  readonly prefix: string
  /** The count is shared through Redis, not local to this instance. */
  readonly localKeys = false
  private readonly ctx: FeatureContext
  private readonly policy: RedisDownPolicy
  /** Counts of clients with hits left: evicted first, least recently seen first. */
  private readonly memory: MemoryStore
  /** Counts of clients that used up their limit: never evicted to make room for the others. */
  private readonly usedUp: MemoryStore
  private baseLimit: number | undefined
  private options: ExpressRateLimitOptions | undefined
  private windowMs = 60_000
  private denyHits = Number.MAX_SAFE_INTEGER
  private redisStore: RedisStore | undefined
  /** rate-limit-redis stores whose increment script failed to load (they never send EVALSHA). */
  private readonly unloaded = new WeakSet<RedisStore>()

  constructor(ctx: FeatureContext, options: Readonly<FailoverRateLimitStoreOptions>, private readonly limits: Readonly<MemoryLimit> = { limit: undefined, instances: 1 }) {
    this.ctx = ctx
    this.policy = options.onRedisDown
    this.prefix = ctx.key(`${options.name}:`)
    this.memory = ctx.memory
    this.usedUp = ctx.extraMemory('used-up')
    ctx.onResume(() => { this.connectRedis() })
  }

  /** Called once by express-rate-limit with its parsed options. */
  init(options: ExpressRateLimitOptions): void {
    this.options = options
    this.windowMs = options.windowMs
    this.baseLimit = typeof options.limit === 'number' ? options.limit : this.limits.limit
    // 'deny' reports one hit over a fixed limit, so `remaining` reads 0 and the handler runs.
    this.denyHits = typeof options.limit === 'number' ? options.limit + 1 : Number.MAX_SAFE_INTEGER
    if (this.ctx.backend === 'redis') this.connectRedis()
  }

  /**
   * Called whenever the kit (re)connects (by the kit: no need to call it). rate-limit-redis loads
   * its scripts once, in init(): a load that failed while Redis was down would fail every later
   * call, so each connection gets a fresh store (two SCRIPT LOADs; on a Cluster, on every master).
   * A script flushed later (SCRIPT FLUSH, failover to a replica) is reloaded on NOSCRIPT, which
   * never ran the script: no double count (see commands.ts).
   */
  connectRedis(): RedisStore | undefined {
    const client = this.ctx.client
    if (!client || !this.options) return undefined
    const store = new RedisStore({ prefix: this.prefix, ...rateLimitCommands(client) })
    store.init(this.options).catch((error: unknown) => this.warnLoadFailure(error))
    // Registered before any call waits on it, so it runs first: a call that then fails on this
    // failed load never sent its EVALSHA, and its hit is replayed like any other outage hit.
    store.incrementScriptSha.catch(() => { this.unloaded.add(store) })
    this.redisStore = store
    return store
  }

  /** Not `async`: the manager's promise is returned as is, so Redis hits cost one promise. */
  increment(key: string): Promise<ClientRateLimitInfo> {
    const full = this.prefix + key
    return this.ctx.run({
      redis: () => {
        const store = this.redis()
        return store.increment(key).catch((error: unknown) => {
          if (this.unloaded.has(store) && isOutage(error)) throw new NotSentError(`the rate-limit script never loaded: ${(error as Error).message}`)
          throw error
        })
      },
      memory: () => this.incrementInMemory(full),
      journal: (info) => this.hitWrite(full, 1, info?.totalHits === 1),
    })
  }

  decrement(key: string): Promise<void> {
    const full = this.prefix + key
    return this.ctx.run({
      redis: () => this.redis().decrement(key),
      memory: () => {
        if (!this.counts()) return
        const tier = this.tierOf(full)
        const hits = Number(tier.get(full) ?? 0)
        if (hits > 0) tier.replaceKeepTtl(full, String(hits - 1))
      },
      journal: () => this.hitWrite(full, -1, false),
    })
  }

  resetKey(key: string): Promise<void> {
    const full = this.prefix + key
    return this.ctx.run({
      redis: async () => { this.forget(full); await this.redis().resetKey(key) },
      memory: () => { this.forget(full) },
      journal: { op: 'del', key: full },
    })
  }

  get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const full = this.prefix + key
    return this.ctx.run({
      redis: async () => {
        const info = await this.redis().get(key)
        // rate-limit-redis reads a missing key as NaN hits (RESP3 nil): report it as absent.
        return info && info.totalHits > 0 ? info : undefined
      },
      memory: () => {
        const tier = this.tierOf(full)
        const hits = this.counts() ? Number(tier.get(full) ?? 0) : 0
        const ttl = tier.remainingTtl(full)
        if (hits <= 0 || ttl === undefined || !Number.isFinite(ttl)) return undefined
        return { totalHits: hits, resetTime: new Date(Date.now() + ttl) }
      },
    })
  }

  private redis(): RedisStore {
    const store = this.redisStore ?? this.connectRedis()
    // Only reachable if the kit became ready before express-rate-limit called init().
    if (!store) throw new Error('express-redis-kit: the rate limit store was used before express-rate-limit initialised it')
    return store
  }

  /** Whether memory counts hits: the 'memory' policy, and any policy when Redis is disabled on purpose. */
  private counts(): boolean {
    return this.policy === 'memory' || this.ctx.disabled
  }

  /** The journal entry for hits counted in memory, in the window memory holds for this client. */
  private hitWrite(full: string, delta: number, newWindow: boolean): JournalWrite | undefined {
    if (!this.counts()) return undefined
    const ttl = this.tierOf(full).remainingTtl(full)
    if (ttl === undefined || !Number.isFinite(ttl)) return undefined
    return { op: 'hits', key: full, delta, newWindow, endsAt: Date.now() + ttl }
  }

  /** The tier holding a client's count (the first tier when neither does). */
  private tierOf(full: string): MemoryStore {
    return this.usedUp.has(full) ? this.usedUp : this.memory
  }

  private forget(full: string): void {
    this.memory.delete(full)
    this.usedUp.delete(full)
  }

  /** The limit memory enforces now: the instance's share during an outage. */
  private memoryLimit(): number | undefined {
    const limit = this.baseLimit
    if (limit === undefined || this.limits.instances <= 1 || !this.ctx.outage) return limit
    return Math.ceil(limit / this.limits.instances)
  }

  /**
   * Called by kit.rateLimit() with what express-rate-limit decided, for a limit given as a
   * function (the store cannot know it): a client counted in memory with no hits left moves to
   * the tier that eviction spares.
   */
  usedUpIfLimited(key: string, used: number, limit: number): void {
    if (used >= limit) this.moveToUsedUp(this.prefix + key)
  }

  private moveToUsedUp(full: string): void {
    const hits = this.memory.get(full)
    const ttl = this.memory.remainingTtl(full)
    if (hits === undefined || ttl === undefined) return
    this.usedUp.set(full, hits, ttl)
    this.memory.delete(full)
  }

  private incrementInMemory(full: string): ClientRateLimitInfo {
    const now = Date.now()
    if (!this.counts()) {
      return this.policy === 'allow'
        ? { totalHits: 1, resetTime: new Date(now + this.windowMs) }
        // Retry-After: 1 s, so clients come back soon after Redis does.
        : { totalHits: this.denyHits, resetTime: new Date(now + Math.min(this.windowMs, 1000)) }
    }
    const tier = this.tierOf(full)
    const current = tier.get(full)
    const ttl = current === undefined ? undefined : tier.remainingTtl(full)
    let hits = 1
    let resetTime = new Date(now + this.windowMs)
    if (current === undefined || ttl === undefined || !Number.isFinite(ttl)) {
      this.memory.set(full, '1', this.windowMs)
    } else {
      hits = Number(current) + 1
      tier.replaceKeepTtl(full, String(hits))
      resetTime = new Date(now + ttl)
    }
    const limit = this.memoryLimit()
    if (tier === this.memory && limit !== undefined && hits >= limit) this.moveToUsedUp(full)
    return { totalHits: hits, resetTime }
  }

  private warnLoadFailure(error: unknown): void {
    // An outage is the manager's business (the next call degrades and the next connection retries).
    if (isOutage(error)) return
    const message = error instanceof Error ? error.message : String(error)
    this.ctx.log.warnOnce('ERR_KIT_RATE_LIMIT_SCRIPT', `rate limiter ${this.prefix}: rate-limit-redis could not load its scripts (${message}); requests will fail until this is fixed`)
  }
}
