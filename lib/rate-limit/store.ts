/**
 * FailoverRateLimitStore: express-rate-limit's Store, answered by rate-limit-redis over the kit's
 * connection while Redis is ready and by the kit's memory twin while it is not. The connection
 * manager picks one per call; this file only says what each side does.
 *
 * Hits counted in memory during an outage are kept per client key and, once Redis answers again,
 * added to the client's window in Redis if this instance's window is still open (the journal
 * sends them before any newer command). A hit whose Redis call was sent and then failed is never
 * replayed: it may have counted already.
 */
import type { ClientRateLimitInfo, Options as ExpressRateLimitOptions, Store } from 'express-rate-limit'
import { RedisStore, type RedisReply } from 'rate-limit-redis'
import { isOutage, neverRan, type ConnectionManager } from '../connection.js'
import type { MemoryStore } from '../memory.js'
import type { RedisClient } from '../redis-types.js'
import type { RedisDownPolicy } from './options.js'

export interface FailoverRateLimitStoreOptions {
  /** The limiter's name; its keys are `<keyPrefix>rate:<name>:`. */
  name: string
  onRedisDown: RedisDownPolicy
}

/** This instance's hits in one client's open window that Redis has not seen yet. */
interface OutageCount {
  hits: number
  /** resetKey() ran during the outage: Redis' count is deleted before the hits are added. */
  reset: boolean
}

/**
 * Adds the outage's hits to the client's window; a window that ended (or never began) in Redis
 * is started with this instance's remaining time, as rate-limit-redis does (`PTTL <= 0`).
 * KEYS[1] key, ARGV[1] hits, ARGV[2] remaining window ms, ARGV[3] '1' to delete first.
 */
const RECONCILE = `
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
local hits = tonumber(ARGV[1])
if hits <= 0 then return 0 end
if redis.call('PTTL', KEYS[1]) <= 0 then
  redis.call('SET', KEYS[1], hits, 'PX', ARGV[2])
  return hits
end
return redis.call('INCRBY', KEYS[1], hits)`

/** The stores of each kit, given a fresh rate-limit-redis store by one listener on every (re)connection. */
const storesOf = new WeakMap<ConnectionManager, FailoverRateLimitStore[]>()

function register(manager: ConnectionManager, store: FailoverRateLimitStore): void {
  const stores = storesOf.get(manager)
  if (stores) {
    stores.push(store)
    return
  }
  const created = [store]
  storesOf.set(manager, created)
  manager.on('stateChange', (to) => {
    if (to === 'ready') for (const each of created) each.connectRedis()
  })
}

export class FailoverRateLimitStore implements Store {
  /** Read by express-rate-limit's double-count check: keys of different limiters never clash. */
  readonly prefix: string
  /** The count is shared through Redis, not local to this instance. */
  readonly localKeys = false
  private readonly manager: ConnectionManager
  private readonly policy: RedisDownPolicy
  private readonly memory: MemoryStore
  private readonly outage = new Map<string, OutageCount>()
  private options: ExpressRateLimitOptions | undefined
  private windowMs = 60_000
  private denyHits = Number.MAX_SAFE_INTEGER
  private redisStore: RedisStore | undefined
  /** rate-limit-redis stores whose increment script failed to load (they never send EVALSHA). */
  private readonly unloaded = new WeakSet<RedisStore>()
  private warnedLoad = false
  private warnedFull = false

  constructor(manager: ConnectionManager, options: Readonly<FailoverRateLimitStoreOptions>) {
    this.manager = manager
    this.policy = options.onRedisDown
    this.prefix = manager.key('rate:', `${options.name}:`)
    this.memory = manager.memory('rate-limit')
    register(manager, this)
  }

  /** Called once by express-rate-limit with its parsed options. */
  init(options: ExpressRateLimitOptions): void {
    this.options = options
    this.windowMs = options.windowMs
    // 'deny' reports one hit over a fixed limit, so `remaining` reads 0 and the handler runs.
    this.denyHits = typeof options.limit === 'number' ? options.limit + 1 : Number.MAX_SAFE_INTEGER
    if (this.manager.state === 'ready') this.connectRedis()
  }

  /**
   * Called whenever the kit (re)connects (by the kit: no need to call it). rate-limit-redis loads its scripts once, in init(): a
   * load that failed while Redis was down would fail every later call, so each connection gets a
   * fresh store (two SCRIPT LOADs). A script flushed later (SCRIPT FLUSH, failover to a replica)
   * is reloaded by rate-limit-redis itself on NOSCRIPT, which never ran the script: no double count.
   */
  connectRedis(): RedisStore | undefined {
    const client = this.manager.redis
    if (!client || !this.options) return undefined
    const store = new RedisStore({
      prefix: this.prefix,
      sendCommand: (command: string, ...args: string[]) => client.call(command, ...args) as Promise<RedisReply>,
    })
    store.init(this.options).catch((error: unknown) => this.warnLoadFailure(error))
    // Registered before any call waits on it, so it runs first: a call that then fails on this
    // failed load never sent its EVALSHA, and its hit is replayed like any other outage hit.
    store.incrementScriptSha.catch(() => { this.unloaded.add(store) })
    this.redisStore = store
    // Every journal entry was sent (or dropped with a warning) before the kit became ready.
    this.outage.clear()
    this.warnedFull = false
    return store
  }

  /** Not `async`: the manager's promise is returned as is, so Redis hits cost one promise. */
  increment(key: string): Promise<ClientRateLimitInfo> {
    let sentTo: RedisStore | undefined
    return this.manager.run({
      redis: () => { sentTo = this.redis(); return sentTo.increment(key) },
      memory: () => this.incrementInMemory(this.prefix + key, sentTo === undefined || this.unloaded.has(sentTo)),
    })
  }

  decrement(key: string): Promise<void> {
    const full = this.prefix + key
    let attempted = false
    return this.manager.run({
      redis: () => { attempted = true; return this.redis().decrement(key) },
      memory: () => {
        if (!this.counts()) return
        const hits = Number(this.memory.get(full) ?? 0)
        if (hits <= 0) return
        this.memory.replaceKeepTtl(full, String(hits - 1))
        const pending = this.outage.get(full)
        if (pending && !attempted) pending.hits -= 1
      },
    })
  }

  resetKey(key: string): Promise<void> {
    const full = this.prefix + key
    let attempted = false
    return this.manager.run({
      redis: async () => { attempted = true; this.memory.delete(full); await this.redis().resetKey(key) },
      memory: () => {
        this.memory.delete(full)
        if (attempted) return
        const pending = this.track(full, true)
        if (pending) { pending.hits = 0; pending.reset = true }
      },
    })
  }

  get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const full = this.prefix + key
    return this.manager.run({
      redis: async () => {
        const info = await this.redis().get(key)
        // rate-limit-redis reads a missing key as NaN hits (RESP3 nil): report it as absent.
        return info && info.totalHits > 0 ? info : undefined
      },
      memory: () => {
        const hits = this.counts() ? Number(this.memory.get(full) ?? 0) : 0
        const ttl = this.memory.remainingTtl(full)
        if (hits <= 0 || ttl === undefined || !Number.isFinite(ttl)) return undefined
        return { totalHits: hits, resetTime: new Date(Date.now() + ttl) }
      },
    })
  }

  private redis(): RedisStore {
    const store = this.redisStore ?? this.connectRedis()
    // Only reachable if the kit became ready before express-rate-limit called init().
    if (!store) throw new Error('rate limit store is not initialised: Connection is closed')
    return store
  }

  /** Whether memory counts hits: the 'memory' policy, and any policy when Redis is disabled on purpose. */
  private counts(): boolean {
    return this.policy === 'memory' || this.manager.state === 'disabled'
  }

  private incrementInMemory(full: string, journal: boolean): ClientRateLimitInfo {
    const now = Date.now()
    if (!this.counts()) {
      return this.policy === 'allow'
        ? { totalHits: 1, resetTime: new Date(now + this.windowMs) }
        // Retry-After: 1 s, so clients come back soon after Redis does.
        : { totalHits: this.denyHits, resetTime: new Date(now + Math.min(this.windowMs, 1000)) }
    }
    const current = this.memory.get(full)
    const ttl = current === undefined ? undefined : this.memory.remainingTtl(full)
    let hits: number
    let remaining: number
    if (current === undefined || ttl === undefined || !Number.isFinite(ttl)) {
      hits = 1
      remaining = this.windowMs
      this.memory.set(full, '1', remaining)
    } else {
      hits = Number(current) + 1
      remaining = ttl
      this.memory.replaceKeepTtl(full, String(hits))
    }
    // A call that reached Redis and failed may have counted there already: never replay it.
    if (journal) {
      const pending = this.track(full, hits === 1)
      if (pending) pending.hits += 1
    }
    return { totalHits: hits, resetTime: new Date(now + remaining) }
  }

  /** The outage count of one client key, journaled for replay; a new window starts a new count. */
  private track(full: string, newWindow: boolean): OutageCount | undefined {
    if (this.manager.state === 'disabled') return undefined
    let pending = this.outage.get(full)
    if (pending && !newWindow) return pending
    if (!pending && this.outage.size >= this.manager.config.journal.maxEntries) {
      this.warnFull()
      return undefined
    }
    // resetKey() empties memory, so the next hit looks like a new window: keep its reset.
    const fresh: OutageCount = { hits: 0, reset: pending?.reset ?? false }
    pending = fresh
    this.outage.set(full, fresh)
    this.manager.recordCustom(`rate-limit:${full}`, (client) => this.reconcile(client, full, fresh))
    return fresh
  }

  /** Replays one client's outage hits; hits counted while it runs start a new count. */
  private async reconcile(client: RedisClient, full: string, pending: OutageCount): Promise<void> {
    if (this.outage.get(full) === pending) this.outage.delete(full)
    const { hits, reset } = pending
    pending.hits = 0
    pending.reset = false
    const ttl = this.memory.remainingTtl(full)
    const open = ttl !== undefined && Number.isFinite(ttl) && ttl > 0
    const add = open && hits > 0 ? hits : 0
    if (!reset && add === 0) return
    try {
      await client.eval(RECONCILE, 1, full, add, open ? Math.ceil(ttl) : 1, reset ? '1' : '0')
    } catch (error) {
      // Sent and then lost (timeout, closed socket): it may have run, so it is not retried.
      if (neverRan(error)) this.putBack(full, pending, hits, reset)
      throw error
    }
  }

  private putBack(full: string, pending: OutageCount, hits: number, reset: boolean): void {
    const newer = this.outage.get(full)
    if (newer && newer !== pending) {
      // A reset made since then already discards these hits.
      if (!newer.reset) newer.hits += hits
      newer.reset ||= reset
      return
    }
    pending.hits += hits
    pending.reset ||= reset
    this.outage.set(full, pending)
  }

  private warnFull(): void {
    if (this.warnedFull) return
    this.warnedFull = true
    this.manager.config.logger?.warn(`[express-redis-kit] rate limiter ${this.prefix}: more than journal.maxEntries `
      + `(${this.manager.config.journal.maxEntries}) clients counted during this outage; hits of further clients are enforced in memory but not added to Redis afterwards`)
  }

  private warnLoadFailure(error: unknown): void {
    // An outage is the manager's business (the next call degrades and the next connection retries).
    if (isOutage(error) || this.warnedLoad) return
    this.warnedLoad = true
    const message = error instanceof Error ? error.message : String(error)
    this.manager.config.logger?.warn(`[express-redis-kit] rate limiter ${this.prefix}: rate-limit-redis could not load its scripts (${message}); requests will fail until this is fixed`)
  }
}
