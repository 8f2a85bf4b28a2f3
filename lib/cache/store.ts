/**
 * The cache store: one small interface, implemented on Redis (`redis-store.ts`) and on the
 * memory twin (here); the connection manager picks which one answers each call.
 *
 * The memory twin is only used while Redis is not ready, and is emptied whenever the kit goes
 * (back) to Redis: entries it holds were filled during the current outage, so an invalidation
 * another instance made through Redis in between can never be undone by a leftover memory entry.
 * Invalidations made while Redis is down apply to memory at once and are journaled; the journal
 * replays them (all of them, SCANs included) before the kit uses Redis again.
 */
import type { FeatureContext } from '../core/context.js'
import type { JournalWrite } from '../core/journal.js'
import type { MemoryStore } from '../core/memory.js'
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


/** Every call runs on Redis when the kit is ready, else on memory, chosen by the manager. */
export class CacheStore {
  private readonly redis: RedisCacheOps
  private readonly memory: MemoryCacheOps

  constructor(private readonly ctx: FeatureContext, private readonly keys: KeySpace, owner: string) {
    this.redis = new RedisCacheOps(keys, owner)
    this.memory = new MemoryCacheOps(ctx.memory)
    // Back on Redis: what memory holds was filled during the outage and may be stale by now.
    ctx.onResume(() => this.memory.clear())
  }

  /** Whether memory answers right now (Redis is not in use), so a read can be synchronous. */
  get onMemory(): boolean {
    return this.ctx.backend === 'memory'
  }

  /** A synchronous read of the memory twin, for when `onMemory` is true. */
  getFromMemory(key: CacheKey, field: string): string | undefined {
    return this.memory.get(key, field)
  }

  /** Bytes from Redis, or their latin1 string from memory. */
  get(key: CacheKey, field: string): Promise<Buffer | string | undefined> {
    return this.ctx.run<Buffer | string | undefined>({
      redis: (client) => this.redis.get(client, key, field),
      memory: () => this.memory.get(key, field),
    })
  }

  /** Takes the refill lock of a field. In memory there is no other instance to wait for. */
  acquire(key: CacheKey, lockField: string, token: string, ttlMs: number): Promise<boolean> {
    return this.ctx.run({
      redis: (client) => this.redis.acquire(client, key, lockField, token, ttlMs),
      memory: () => true,
    })
  }

  release(key: CacheKey, lockField: string, token: string): Promise<void> {
    return this.ctx.run({
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
    return this.ctx.run({
      redis: (client) => this.redis.put(client, key, fill),
      memory: (reason) => reason === 'not-tried' && this.memory.put(key, fill),
    })
  }

  /**
   * Removes what `target` names. Memory is always cleaned at once. If Redis did not run it, or it
   * is unknown whether it did, the invalidation is journaled: running it twice is harmless, and
   * skipping one that did not run would let the stale entry come back from Redis.
   */
  invalidate(target: Target): Promise<number> {
    if (target.kind === 'prefix') {
      return this.ctx.runStepped({
        redis: async (client, step) => {
          this.memory.invalidate(target)
          return this.redis.invalidatePrefix(client, target.prefix, step)
        },
        memory: () => {
          const removed = this.memory.invalidate(target)
          this.ctx.record(this.journalOf(target))
          return removed
        },
      })
    }
    return this.ctx.run({
      redis: (client) => {
        this.memory.invalidate(target)
        return this.redis.invalidate(client, target)
      },
      memory: () => this.memory.invalidate(target),
      journal: this.journalOf(target),
    })
  }

  /** An invalidation as the journal replays it (prefixes by SCAN, so hashed ids match by their head). */
  private journalOf(target: Target): JournalWrite {
    switch (target.kind) {
      case 'key': return { op: 'del', key: this.keys.entry(target.id).redisKey }
      case 'tag': return { op: 'unlink-set', key: this.keys.tag(target.tag) }
      case 'prefix': return { op: 'unlink-matching', pattern: this.keys.scanPattern(target.prefix), covers: `${this.keys.base}e:${target.prefix}` }
    }
  }
}
