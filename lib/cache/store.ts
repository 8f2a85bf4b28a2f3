/**
 * The cache store: one small interface, implemented on Redis (`redis-store.ts`) and on the
 * memory twin (`memory-store.ts`); the connection manager picks which one answers each call.
 *
 * The memory twin is only used while Redis is not ready, and is emptied whenever the kit goes
 * (back) to Redis: entries it holds were filled during the current outage, so an invalidation
 * another instance made through Redis in between can never be undone by a leftover memory entry.
 * Invalidations made while Redis is down apply to memory at once and are journaled; the journal
 * replays them (all of them, SCANs included) before the kit uses Redis again.
 */
import type { FeatureContext } from '../core/context.js'
import type { JournalWrite } from '../core/journal.js'
import type { CacheKey, KeySpace } from './key.js'
import { MemoryCacheOps } from './memory-store.js'
import { RedisCacheOps } from './redis-store.js'
import type { EntryWrite, Target } from './types.js'

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
   * Stores a filled response; resolves whether it was written. Fills are never journaled. A fill
   * sent to Redis that fails there is not put in memory instead: its reply can arrive after an
   * invalidation made during the outage, which it would undo. Memory holds outage fills only.
   */
  put(key: CacheKey, write: EntryWrite): Promise<boolean> {
    return this.ctx.run({
      redis: (client) => this.redis.put(client, key, write),
      memory: (reason) => reason === 'not-tried' && this.memory.put(key, write),
    })
  }

  /**
   * Removes what `target` names. Memory is always cleaned at once. If Redis did not run it, or it
   * is unknown whether it did, the invalidation is journaled: running it twice is harmless, and
   * skipping one that did not run would let the stale entry come back from Redis. A key or prefix
   * may name a few spellings (invalidate.ts): each is one call, journaled on its own.
   */
  async invalidate(target: Target): Promise<number> {
    const counts = target.kind === 'key' ? await Promise.all(target.ids.map((id) => this.invalidateOne({ kind: 'key', ids: [id] })))
      : target.kind === 'prefix' ? await this.invalidatePrefixes(target.prefixes)
        : [await this.invalidateOne(target)]
    return counts.reduce((sum, count) => sum + count, 0)
  }

  private async invalidatePrefixes(prefixes: readonly string[]): Promise<number[]> {
    const counts: number[] = []
    for (const prefix of prefixes) {
      const target: Target = { kind: 'prefix', prefixes: [prefix] }
      counts.push(await this.ctx.runStepped({
        redis: async (client, step) => {
          this.memory.invalidate(target)
          return this.redis.invalidatePrefix(client, prefix, step)
        },
        memory: () => {
          const removed = this.memory.invalidate(target)
          this.ctx.record(this.journalOf(target))
          return removed
        },
      }))
    }
    return counts
  }

  /** One id or one tag. */
  private invalidateOne(target: Exclude<Target, { kind: 'prefix' }>): Promise<number> {
    return this.ctx.run({
      redis: (client) => {
        this.memory.invalidate(target)
        return this.redis.invalidate(client, target, (keys) => {
          for (const key of keys) this.ctx.record({ op: 'del', key })
        })
      },
      memory: () => this.memory.invalidate(target),
      journal: this.journalOf(target),
    })
  }

  /** An invalidation of one id, prefix or tag as the journal replays it (prefixes by SCAN, so hashed ids match by their head). */
  private journalOf(target: Target): JournalWrite {
    switch (target.kind) {
      case 'key': return { op: 'del', key: this.keys.entry(target.ids[0] as string).redisKey }
      case 'tag': return { op: 'unlink-set', key: this.keys.tag(target.tag) }
      case 'prefix': {
        const prefix = target.prefixes[0] as string
        return { op: 'unlink-matching', pattern: this.keys.scanPattern(prefix), covers: `${this.keys.base}e:${prefix}` }
      }
    }
  }
}
