/**
 * The memory half of the cache store, answering while Redis is not in use. It keeps the same
 * fields as the Redis hash, one memory-twin key each, so both halves read and write alike —
 * including the per-id age order that caps an id at `maxVariants` entries (kept, like the Redis
 * index, as one more key of the id, so it goes when the id is invalidated or evicted).
 */
import type { MemoryStore } from '../core/memory.js'
import { tagsOf } from './entry.js'
import { covers } from './invalidate.js'
import type { CacheKey } from './key.js'
import type { EntryWrite, Target } from './types.js'

/** NUL never occurs in URLs or header values: it separates an id from its field in memory. */
const SEP = '\u0000'
/** The id's fields, oldest first, one per line (fields are JSON: never a raw newline). */
const ORDER = '#n'
const VARY_RECORD = 2

export class MemoryCacheOps {
  constructor(private readonly memory: MemoryStore) {}

  /** The stored bytes as their latin1 string (see entry.ts). */
  get(key: CacheKey, field: string): string | undefined {
    return this.memory.get(key.id + SEP + field)
  }

  put(key: CacheKey, write: EntryWrite): boolean {
    const ttl = write.lifetimeMs
    const prefix = key.id + SEP
    const orderKey = prefix + ORDER
    const order = (this.memory.get(orderKey) ?? '').split('\n').filter((field) => field !== '')
    const touch = (field: string): void => {
      const at = order.indexOf(field)
      if (at !== -1) order.splice(at, 1)
      order.push(field)
    }
    const record = write.vary?.toString('latin1')
    const current = this.memory.get(prefix + key.base)
    if (current !== undefined && current.charCodeAt(0) === VARY_RECORD && current !== record) {
      // The variants of a Vary record that changed (or of a response that no longer varies).
      const tail = `,${key.base.slice(5)}`
      for (const field of order.filter((f) => f.startsWith('["v') && f.endsWith(tail))) {
        this.memory.delete(prefix + field)
        order.splice(order.indexOf(field), 1)
      }
    }
    if (record !== undefined) {
      const recordTtl = current === record ? Math.max(ttl, this.memory.remainingTtl(prefix + key.base) ?? 0) : ttl
      this.memory.set(prefix + key.base, record, recordTtl)
      touch(key.base)
    }
    this.memory.set(prefix + write.field, write.bytes.toString('latin1'), ttl)
    touch(write.field)
    while (order.length > write.maxVariants) this.memory.delete(prefix + (order.shift() as string))
    this.memory.set(orderKey, order.join('\n'), Math.max(ttl, this.memory.remainingTtl(orderKey) ?? 0))
    return true
  }

  invalidate(target: Target): number {
    const doomed: string[] = []
    // Keys first: reading a value (for its tags) moves it in the LRU order, which would make a
    // live iteration over keys() see it again, forever.
    for (const memoryKey of [...this.memory.keys()]) {
      const cut = memoryKey.lastIndexOf(SEP)
      const id = memoryKey.slice(0, cut)
      if (covers(target, id, target.kind === 'tag' ? this.tagsAt(memoryKey) : [])) doomed.push(memoryKey)
    }
    for (const memoryKey of doomed) this.memory.delete(memoryKey)
    return doomed.length
  }

  private tagsAt(memoryKey: string): readonly string[] {
    const value = this.memory.get(memoryKey)
    return value === undefined ? [] : tagsOf(value)
  }

  clear(): void {
    this.memory.clear()
  }
}
