/**
 * The failover session store: connect-redis's RedisStore over the kit's connection while Redis is
 * up, the feature's memory twin while it is not, chosen per call by the connection manager.
 * (Reads issue the same GET + parse as RedisStore.get themselves, to mirror the exact bytes into
 * memory; SCAN-based listing is done here to glob-escape the prefix.)
 *
 * - Write-through near-cache: every session read from or written to Redis is also kept in memory
 *   (the same serialized bytes, the same TTL), so sessions this instance has seen stay valid
 *   through an outage.
 * - Writes made during an outage are journaled as the exact key writes connect-redis would have
 *   made (full key, same bytes, same expiry), so a login made then is in Redis afterwards and a
 *   logout is not undone.
 * - express-session is never told about Redis: no 'disconnect' event (it would stop handling
 *   sessions) and no Redis error in a callback (it would become a 500).
 * - Touch throttling: the Redis EXPIRE is skipped while the expiry this instance last wrote is
 *   close enough to the one the touch would write.
 * - Tombstones (tombstone.ts): a destroyed session cannot be saved again within its lifetime, by a
 *   request that loaded it before the logout and ends after it — checked by the save script on
 *   Redis, by the memory twin, and by the outage replay (a journaled save names its tombstone).
 */
import { RedisStore } from 'connect-redis'
import type { Request } from 'express'
import session, { type SessionData } from 'express-session'
import { LRUCache } from 'lru-cache'
import type { Step } from '../core/calls.js'
import type { FeatureContext } from '../core/context.js'
import type { MemoryStore } from '../core/memory.js'
import type { RedisClient } from '../core/redis-types.js'
import { escapeGlob } from '../core/scan.js'
import { checkSession, settle, type SessionCallback, type StoredSession } from './data.js'
import { deleteKeys, scanKeys, values } from './listing.js'
import { parseStoreOptions, type SessionSerializer, type SessionStoreOptions } from './options.js'
import { DESTROY, isTombstone, SAVE, tombstoneKey } from './tombstone.js'
import { ROUNDING_MS, TouchThrottle } from './touch.js'
import { SessionCounts } from './metrics.js'

export type { SessionCallback, StoredSession } from './data.js'

export class FailoverSessionStore extends session.Store {
  /** The full Redis key prefix of sessions: the kit's `keyPrefix`, then `session:`. */
  readonly prefix: string
  private readonly ctx: FeatureContext
  private readonly memory: MemoryStore
  /** Destroyed session keys, in memory (bounded like the near-cache). */
  private readonly tombstones: MemoryStore
  private readonly redisStore: RedisStore | undefined
  private readonly ttlMs: number
  private readonly serializer: SessionSerializer
  private readonly throttle: TouchThrottle
  /** Per session id made during an outage for a cookie this instance could not read: that cookie's session id. */
  private readonly replaced: LRUCache<string, string>
  /** Operations by backend, near-cache hits (metrics.ts). */
  private readonly counted: SessionCounts

  constructor(ctx: FeatureContext, options: Readonly<Partial<SessionStoreOptions>> = {}) {
    super()
    const config = parseStoreOptions(options)
    this.ctx = ctx
    this.counted = new SessionCounts(ctx)
    this.memory = ctx.memory
    this.tombstones = ctx.extraMemory('tombstones')
    this.prefix = ctx.prefix
    this.ttlMs = config.ttlMs
    this.serializer = config.serializer
    this.throttle = new TouchThrottle(ctx.settings.memory.maxEntries, config.touchAfterMs)
    this.replaced = new LRUCache({ max: ctx.settings.memory.maxEntries })
    const client = ctx.client
    // connect-redis sends the touches (EXPIRE); saves and destroys go through the tombstone scripts.
    this.redisStore = client === undefined ? undefined : new RedisStore({
      client,
      prefix: this.prefix,
      ttl: (sess: SessionData) => this.ttlSeconds(sess),
      serializer: this.serializer,
    })
    ctx.register()
  }

  /** The TTL connect-redis writes: from the cookie's expiry when it has one, else `ttlMs`. */
  private ttlSeconds(sess: SessionData): number {
    const expires = sess?.cookie?.expires
    if (expires) return Math.ceil((Number(new Date(expires)) - Date.now()) / 1000)
    return Math.ceil(this.ttlMs / 1000)
  }

  override get(sid: string, callback?: SessionCallback<SessionData | null>): Promise<SessionData | null> {
    const key = this.prefix + sid
    return this.answer('read', null, callback, () => this.ctx.run({
      // The same GET and parse as connect-redis's get(), done here to mirror the exact bytes into
      // the near-cache without serializing the session a second time.
      redis: (redis) => redis.get(key),
      fromRedis: (raw) => {
        this.counted.add('read', 'redis')
        if (!raw) {
          this.memory.delete(key)
          return null
        }
        const sess = this.parse(raw)
        // Unchanged text needs no write: the touch that follows this read slides the TTL.
        if (this.memory.get(key) !== raw) this.memory.set(key, raw, this.ttlSeconds(sess) * 1000)
        return sess
      },
      // While Redis is away, a session this instance never saw is "no session", not an error.
      memory: () => {
        const raw = this.memory.get(key)
        this.counted.readFromMemory(raw !== undefined)
        return raw === undefined ? null : this.parse(raw)
      },
    }))
  }

  override set(sid: string, sess: SessionData, callback?: SessionCallback<void>): Promise<void> {
    let text: string
    try {
      text = this.serializer.stringify(sess)
    } catch (error) {
      // Unserializable session data is the application's bug: express-session passes it to next(err).
      return settle(Promise.reject(error), callback)
    }
    const ttlSeconds = this.ttlSeconds(sess)
    if (ttlSeconds <= 0) return this.destroy(sid, callback)
    const key = this.prefix + sid
    const ttlMs = ttlSeconds * 1000
    const remember = (): void => { this.memory.set(key, text, ttlMs) }
    // A save refused because the session was destroyed is answered as done: the request that made
    // it ends normally, and the logout holds.
    return this.answer('write', undefined, callback, () => this.ctx.run<boolean, unknown>({
      redis: (redis) => SAVE.run(redis, [key, tombstoneKey(key)], [text, ttlSeconds]),
      fromRedis: (saved) => {
        this.counted.add('write', 'redis')
        if (saved !== 1) {
          this.forget(key, Math.max(ttlMs, this.ttlMs))
          return false
        }
        remember()
        this.throttle.wrote(sid, Date.now() + ttlMs, ttlMs)
        return true
      },
      memory: () => {
        this.counted.add('write', 'memory')
        if (this.tombstones.has(key)) return false
        remember()
        // Redis may never get this write (an in-doubt one is not journaled): touch it next time.
        this.throttle.forget(sid)
        return true
      },
      // The replay skips this save if the session's tombstone exists by then (another instance's
      // logout during the outage): checked by the replay script, in the same step as the write.
      journal: (saved) => (saved ? { op: 'set', key, value: text, expiresAt: Date.now() + ttlMs, unlessExists: tombstoneKey(key) } : undefined),
    }).then(() => undefined))
  }

  /**
   * Slides the session's expiry. A skipped refresh sends nothing to Redis; a due one waits for
   * its EXPIRE, as connect-redis does, bounded by the command timeout.
   */
  override touch(sid: string, sess: SessionData, callback?: SessionCallback<void>): Promise<void> {
    const key = this.prefix + sid
    const ttlSeconds = this.ttlSeconds(sess)
    const ttlMs = ttlSeconds * 1000
    const now = Date.now()
    const slide = (): void => {
      // The near-cache only matters in an outage: refresh it at most once per tenth of the TTL
      // (and at once when the TTL was shortened).
      const remaining = this.memory.remainingTtl(key)
      if (remaining !== undefined && (ttlSeconds <= 0 || remaining < ttlMs - ttlMs / 10 || remaining > ttlMs + ROUNDING_MS)) {
        this.memory.expire(key, ttlMs)
      }
    }
    if (this.throttle.skips(sid, ttlMs, now + ttlMs)) {
      this.counted.add('touch_skipped', this.ctx.backend)
      slide()
      // Called back on a microtask, not synchronously: express-session then ends the response
      // after this tick's other replies are handled and Node writes the responses back to back.
      // Answering synchronously wrote each one mid-batch and cost ~10% throughput (bench/session.ts).
      return settle(Promise.resolve(), callback)
    }
    return this.answer('write', undefined, callback, () => this.ctx.run({
      redis: () => this.redis().touch(sid, sess),
      fromRedis: () => {
        this.counted.add('touch', 'redis')
        this.throttle.wrote(sid, now + ttlMs, ttlMs)
        slide()
      },
      memory: () => { this.counted.add('touch', 'memory'); slide() },
      // PEXPIREAT never creates a key, so replaying a touch cannot bring back a destroyed session.
      journal: { op: 'pexpireat', key, at: now + ttlMs },
    }))
  }

  /**
   * Wraps the `generate` express-session installs on its store. During an outage a cookie whose
   * session this instance never saw gets a fresh session; destroying that one (a logout) must
   * also destroy the cookie's session still in Redis, or it comes back with Redis.
   */
  followReplacedSessions(): void {
    const self = this as unknown as { generate(req: Request): void }
    const generate = self.generate.bind(this)
    self.generate = (req) => {
      const previous = req.sessionID as string | undefined
      generate(req)
      if (previous && previous !== req.sessionID && this.ctx.outage) this.replaced.set(req.sessionID, previous)
    }
  }

  override destroy(sid: string, callback?: SessionCallback<void>): Promise<void> {
    const previous = this.replaced.get(sid)
    this.replaced.delete(sid)
    return this.answer('write', undefined, callback, async () => {
      await this.destroyKey(this.prefix + sid)
      if (previous !== undefined) await this.destroyKey(this.prefix + previous)
    })
  }

  /**
   * Deletes the session and leaves its tombstone, for as long as the session had left and at least
   * `ttlMs`. During an outage both are journaled: the DEL, and the tombstone as a SET.
   */
  private destroyKey(key: string): Promise<void> {
    return this.ctx.run<void, unknown>({
      redis: (redis) => DESTROY.run(redis, [key, tombstoneKey(key)], [this.ttlMs]),
      fromRedis: () => { this.counted.add('destroy', 'redis'); this.forget(key, this.ttlMs) },
      memory: () => {
        this.counted.add('destroy', 'memory')
        const left = this.memory.remainingTtl(key)
        const keepMs = Math.max(this.ttlMs, left !== undefined && Number.isFinite(left) ? left : 0)
        this.forget(key, keepMs)
        this.ctx.record({ op: 'set', key: tombstoneKey(key), value: '1', expiresAt: Date.now() + keepMs })
      },
      journal: { op: 'del', key },
    })
  }

  /** This instance forgets a destroyed session, and remembers its tombstone for `keepMs`. */
  private forget(key: string, keepMs: number): void {
    this.memory.delete(key)
    this.throttle.forget(key.slice(this.prefix.length))
    const left = this.tombstones.remainingTtl(key)
    if (left === undefined || left < keepMs) this.tombstones.set(key, '1', keepMs)
  }

  /** Every session (SCAN over the prefix, never KEYS); during an outage, those in this instance's memory. */
  override all(callback?: SessionCallback<StoredSession[]>): Promise<StoredSession[]> {
    return this.answer('read', [], callback, () => this.ctx.runStepped({
      redis: async (redis, step) => {
        const found: StoredSession[] = []
        for await (const [key, raw] of values(redis, await this.scanSessions(redis, step), step)) this.collect(found, key, raw)
        return found
      },
      memory: () => {
        const found: StoredSession[] = []
        // A snapshot: reading an entry moves it in the LRU order the iterator walks.
        for (const key of [...this.memory.keys()]) {
          const raw = this.memory.get(key)
          if (raw !== undefined) this.collect(found, key, raw)
        }
        return found
      },
    }))
  }

  /** Session ids (SCAN over the prefix); during an outage, those in this instance's memory. */
  ids(callback?: SessionCallback<string[]>): Promise<string[]> {
    const strip = (keys: Iterable<string>): string[] => [...keys].map((key) => key.slice(this.prefix.length))
    return this.answer('read', [], callback, () => this.ctx.runStepped({
      redis: async (redis, step) => strip(await this.scanSessions(redis, step)),
      memory: () => strip(this.memory.keys()),
    }))
  }

  override length(callback?: SessionCallback<number>): Promise<number> {
    return settle(this.ids().then((ids) => ids.length), callback)
  }

  /**
   * Deletes every session. During an outage (or when Redis stops answering during the clear) this
   * instance's sessions go at once and the clear is journaled: it reaches Redis on recovery,
   * before the sessions created after it, which therefore survive it.
   */
  override clear(callback?: SessionCallback<void>): Promise<void> {
    return this.answer('write', undefined, callback, () => this.ctx.runStepped({
      redis: async (redis, step) => {
        this.forgetAll()
        // Tombstones stay: a request still holding a destroyed session must not bring it back.
        const keys = await this.scanSessions(redis, step)
        await deleteKeys(redis, keys, step)
      },
      // Never sent, or Redis went away mid-clear: the journaled clear takes over (deleting twice is harmless).
      memory: () => this.clearDuringOutage(),
    }))
  }

  private clearDuringOutage(): void {
    this.forgetAll()
    // Supersedes the session writes journaled before it, which frees their room for the clear.
    this.ctx.record({ op: 'unlink-matching', pattern: `${escapeGlob(this.prefix)}*`, covers: this.prefix })
  }

  private forgetAll(): void {
    this.memory.clear()
    this.throttle.clear()
  }

  private collect(found: StoredSession[], key: string, raw: string): void {
    try {
      found.push({ ...this.parse(raw), id: key.slice(this.prefix.length) })
    } catch (error) {
      this.ctx.log.warnOnce('ERR_KIT_SESSION_DATA', `could not parse a stored session (${(error as Error).message}); it is skipped`)
    }
  }

  private parse(raw: string): SessionData {
    return checkSession(this.serializer.parse(raw))
  }

  /** The session keys under the prefix (SCAN), tombstones left out. */
  private async scanSessions(redis: RedisClient, step: Step): Promise<string[]> {
    return (await scanKeys(redis, this.prefix, step)).filter((key) => !isTombstone(key))
  }

  private redis(): RedisStore {
    if (this.redisStore === undefined) throw new Error('express-redis-kit: session store has no Redis client')
    return this.redisStore
  }

  /**
   * The manager already answers outages from memory; what is left is Redis replying about the
   * data itself (a corrupt value, a key of the wrong type). That is logged once and answered as
   * "no session" rather than becoming a 500.
   */
  private answer<T>(kind: 'read' | 'write', fallback: T, callback: SessionCallback<T> | undefined, work: () => Promise<T>): Promise<T> {
    const recover = (error: unknown): T => {
      this.ctx.log.warnOnce(`ERR_KIT_SESSION_${kind === 'read' ? 'READ' : 'WRITE'}`, `a session ${kind} failed `
        + `(${error instanceof Error ? error.message : String(error)}); answered as no session. Logged once.`)
      return fallback
    }
    const pending = work()
    if (callback === undefined) return pending.catch(recover)
    return pending.then((value) => { callback(null, value); return value }, (error: unknown) => {
      const value = recover(error)
      callback(null, value)
      return value
    })
  }

}
