/**
 * The memory half of the cache store, answering while Redis is not in use. It keeps the same
 * fields as the Redis hash, one memory-twin key each, so both halves read and write alike.
 */
import type { MemoryStore } from '../core/memory.js'
import { tagsOf } from './entry.js'
import type { CacheKey } from './key.js'
import type { EntryWrite, Target } from './types.js'

/** NUL never occurs in URLs or header values: it separates an id from its field in memory. */
const SEP = '\u0000'

export class MemoryCacheOps {
  constructor(private readonly memory: MemoryStore) {}

  /** The stored bytes as their latin1 string (see entry.ts). */
  get(key: CacheKey, field: string): string | undefined {
    return this.memory.get(key.id + SEP + field)
  }

  put(key: CacheKey, write: EntryWrite): boolean {
    const ttl = write.lifetimeMs
    if (write.vary === undefined) {
      this.memory.set(key.id + SEP + 'b', write.bytes.toString('latin1'), ttl)
      return true
    }
    const record = write.vary.toString('latin1')
    const current = this.memory.get(key.id + SEP + 'b')
    const recordTtl = current === record ? Math.max(ttl, this.memory.remainingTtl(key.id + SEP + 'b') ?? 0) : ttl
    this.memory.set(key.id + SEP + 'b', record, recordTtl)
    this.memory.set(key.id + SEP + write.field, write.bytes.toString('latin1'), ttl)
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
