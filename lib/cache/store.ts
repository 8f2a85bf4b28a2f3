/**
 * The cache store: one small interface, implemented on Redis (`redis-store.ts`) and on the
 * memory twin (here); the connection manager picks which one answers each call.
 *
 * The memory twin is only used while Redis is not ready, and is emptied whenever the kit goes
 * (back) to Redis: entries it holds were filled during the current outage, so an invalidation
 * another instance made through Redis in between can never be undone by a leftover memory entry.
 * Invalidations made while Redis is down apply to memory at once and are journaled; the journal
 * replays them before the kit uses Redis again.
 */
import { isOutage, type ConnectionManager } from '../connection.js'
import type { MemoryStore } from '../memory.js'
import type { RedisClient } from '../redis-types.js'
import { tagsOf } from './entry.js'
import type { CacheKey, KeySpace } from './key.js'
import { RedisCacheOps } from './redis-store.js'

/** One response to store under a key. */
export interface Fill {
  /** `b`, or the variant field when the response varies. */
  field: string
  /** The lock field this fill holds (checked and released by the Redis write). */
  lockField: string
  /** The lock token; without one nothing is written to Redis (the fill did not own the key). */
  token: string | undefined
  bytes: Buffer
  /** The encoded Vary record, when the response varies. */
  vary: Buffer | undefined
  lifetimeMs: number
  tags: readonly string[]
}

export type Target =
  | { kind: 'key'; id: string }
  | { kind: 'prefix'; prefix: string }
  | { kind: 'tag'; tag: string }

/** NUL never occurs in URLs or header values: it separates an id from its field in memory. */
const SEP = '\u0000'

/** The memory half: the same fields as the Redis hash, one memory key per field. */
export class MemoryCacheOps {
  constructor(private readonly memory: MemoryStore) {}

  /** The stored bytes as their latin1 string (see entry.ts). */
  get(key: CacheKey, field: string): string | undefined {
    return this.memory.get(key.id + SEP + field)
  }

  put(key: CacheKey, fill: Fill): boolean {
    const ttl = fill.lifetimeMs
    if (fill.vary === undefined) {
      this.memory.set(key.id + SEP + 'b', fill.bytes.toString('latin1'), ttl)
      return true
    }
    const record = fill.vary.toString('latin1')
    const current = this.memory.get(key.id + SEP + 'b')
    const recordTtl = current === record ? Math.max(ttl, this.memory.remainingTtl(key.id + SEP + 'b') ?? 0) : ttl
    this.memory.set(key.id + SEP + 'b', record, recordTtl)
    this.memory.set(key.id + SEP + fill.field, fill.bytes.toString('latin1'), ttl)
    return true
  }

  invalidate(target: Target): number {
    const doomed: string[] = []
    // Keys first: reading a value (for its tags) moves it in the LRU order, which would make a
    // live iteration over keys() see it again, forever.
    for (const memoryKey of [...this.memory.keys()]) {
      const cut = memoryKey.lastIndexOf(SEP)
      const id = memoryKey.slice(0, cut)
      const hit = target.kind === 'key' ? id === target.id
        : target.kind === 'prefix' ? id.startsWith(target.prefix)
          : this.hasTag(memoryKey, target.tag)
      if (hit) doomed.push(memoryKey)
    }
    for (const memoryKey of doomed) this.memory.delete(memoryKey)
    return doomed.length
  }

  private hasTag(memoryKey: string, tag: string): boolean {
    const value = this.memory.get(memoryKey)
    return value !== undefined && tagsOf(value).includes(tag)
  }

  clear(): void {
    this.memory.clear()
  }
}

function journalId(target: Target): string {
  return `cache:${target.kind}:${target.kind === 'key' ? target.id : target.kind === 'prefix' ? target.prefix : target.tag}`
}

/** Every call runs on Redis when the kit is ready, else on memory, chosen by the manager. */
export class CacheStore {
  private readonly redis: RedisCacheOps
  private readonly memory: MemoryCacheOps
  /**
   * Prefix invalidations journaled during an outage and not replayed yet. Their replay SCANs, so it
   * may still be running after the kit is back on Redis; until it is done, ids under these prefixes
   * are not read from Redis (they count as misses) so an entry about to be deleted is never served.
   */
  private readonly pendingPrefixes = new Map<string, { prefix: string; replaying: boolean }>()

  constructor(private readonly manager: ConnectionManager, keys: KeySpace) {
    this.redis = new RedisCacheOps(keys)
    this.memory = new MemoryCacheOps(manager.memory('cache'))
    manager.on('stateChange', (to) => {
      if (to !== 'ready') return
      this.memory.clear()
      // The manager invoked every replay just before this; a guard whose replay did not start was
      // dropped from a full journal and would otherwise hide its prefix from Redis for good.
      for (const [id, pending] of this.pendingPrefixes) if (!pending.replaying) this.pendingPrefixes.delete(id)
    })
  }

  /** Whether `id` is under a prefix invalidation that is still being replayed. */
  isPending(id: string): boolean {
    if (this.pendingPrefixes.size === 0) return false
    for (const { prefix } of this.pendingPrefixes.values()) if (id.startsWith(prefix)) return true
    return false
  }

  /** Whether memory answers right now (Redis is not in use), so a read can be synchronous. */
  get onMemory(): boolean {
    return this.manager.backend() === 'memory'
  }

  /** A synchronous read of the memory twin, for when `onMemory` is true. */
  getFromMemory(key: CacheKey, field: string): string | undefined {
    return this.memory.get(key, field)
  }

  /** Bytes from Redis, or their latin1 string from memory. */
  get(key: CacheKey, field: string): Promise<Buffer | string | undefined> {
    return this.manager.run<Buffer | string | undefined>({
      redis: (client) => this.redis.get(client, key, field),
      memory: () => this.memory.get(key, field),
    })
  }

  /** Takes the refill lock of a field. In memory there is no other instance to wait for. */
  acquire(key: CacheKey, lockField: string, token: string, ttlMs: number): Promise<boolean> {
    return this.manager.run({
      redis: (client) => this.redis.acquire(client, key, lockField, token, ttlMs),
      memory: () => true,
    })
  }

  release(key: CacheKey, lockField: string, token: string): Promise<void> {
    return this.manager.run({
      redis: (client) => this.redis.release(client, key, lockField, token),
      memory: () => undefined,
    })
  }

  /**
   * Stores a fill; resolves whether it was written. Fills are never journaled. A fill sent to
   * Redis that fails there is not put in memory instead: its reply can arrive after an
   * invalidation made during the outage, which it would undo. Memory holds outage fills only.
   */
  put(key: CacheKey, fill: Fill): Promise<boolean> {
    const sentToRedis = !this.onMemory
    return this.manager.run({
      redis: (client) => this.redis.put(client, key, fill),
      memory: () => !sentToRedis && this.memory.put(key, fill),
    })
  }

  /**
   * Removes what `target` names. Memory is always cleaned at once. If Redis cannot be reached
   * (down, or the command was sent and timed out), the invalidation is journaled as well: it is
   * idempotent, so replaying one that did run is harmless, and skipping one that did not would let
   * the stale entry come back from Redis.
   */
  invalidate(target: Target): Promise<number> {
    return this.manager.run({
      redis: async (client) => {
        this.memory.invalidate(target)
        return this.redis.invalidate(client, target)
      },
      memory: () => {
        const removed = this.memory.invalidate(target)
        const id = journalId(target)
        if (target.kind === 'prefix') this.pendingPrefixes.set(id, { prefix: target.prefix, replaying: false })
        this.manager.recordCustom(id, (client) => this.replay(client, id, target))
        return removed
      },
    })
  }

  private async replay(client: RedisClient, id: string, target: Target): Promise<number> {
    const pending = this.pendingPrefixes.get(id)
    if (pending) pending.replaying = true
    try {
      const removed = await this.redis.invalidate(client, target, true)
      this.pendingPrefixes.delete(id)
      return removed
    } catch (error) {
      // On an outage the manager journals the replay again, so the guard must stay.
      if (!isOutage(error)) this.pendingPrefixes.delete(id)
      throw error
    }
  }
}
