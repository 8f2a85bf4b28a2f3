/**
 * The bounded TTL memory twin every feature falls back to. One instance per feature, so a flood
 * of cache keys cannot evict the sessions that keep users logged in.
 */
import { LRUCache } from 'lru-cache'
import type { MemoryOptions } from '../types.js'

/** Remaining time to live: `undefined` for a missing key, `Infinity` for a key without expiry. */
export type RemainingTtl = number | undefined

export class MemoryStore {
  private readonly entries: LRUCache<string, string>

  /** @param onEvict called for each entry evicted to stay within the bounds (for metrics). */
  constructor(limits: Readonly<MemoryOptions>, onEvict?: () => void) {
    this.entries = new LRUCache<string, string>({
      ...(onEvict ? { dispose: (_value: string, _key: string, reason: LRUCache.DisposeReason) => { if (reason === 'evict') onEvict() } } : {}),
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      // UTF-16 code units are 2 bytes in V8's worst case; a close-enough byte bound.
      sizeCalculation: (value, key) => 2 * (value.length + key.length) + 1,
      // Expired entries must never be read back, even if nothing purged them yet.
      allowStale: false,
      updateAgeOnGet: false,
      ttlAutopurge: false,
      // Read the clock on every check: a clock cached for 1 ms can report a TTL above the one set.
      ttlResolution: 0,
    })
  }

  get(key: string): string | undefined {
    return this.entries.get(key)
  }

  has(key: string): boolean {
    return this.entries.has(key)
  }

  /** Stores `value`; `ttlMs` of `Infinity` or `undefined` means no expiry. */
  set(key: string, value: string, ttlMs?: number): void {
    const ttl = ttlMs === undefined || ttlMs === Infinity ? 0 : Math.max(1, Math.round(ttlMs))
    this.entries.set(key, value, { ttl })
  }

  /** Replaces the value and keeps the key's remaining TTL, as Redis INCR does. */
  replaceKeepTtl(key: string, value: string): void {
    this.set(key, value, this.remainingTtl(key))
  }

  delete(key: string): boolean {
    return this.entries.delete(key)
  }

  /** Sets a new TTL on an existing key; returns false when the key does not exist. */
  expire(key: string, ttlMs: number): boolean {
    const value = this.entries.get(key)
    if (value === undefined) return false
    if (ttlMs <= 0) return this.entries.delete(key)
    this.set(key, value, ttlMs)
    return true
  }

  remainingTtl(key: string): RemainingTtl {
    if (!this.entries.has(key)) return undefined
    const ttl = this.entries.getRemainingTTL(key)
    return ttl > 0 ? Math.max(1, Math.floor(ttl)) : Infinity
  }

  /**
   * A snapshot of the keys currently held (expired ones skipped). A copy, because reading an
   * entry moves it in the LRU order and a live walk interleaved with reads would never end.
   */
  keys(): string[] {
    return [...this.entries.keys()].filter((key) => this.entries.has(key))
  }

  get size(): number {
    return this.entries.size
  }

  /** Approximate bytes held, for health output and tests of the bound. */
  get bytes(): number {
    return this.entries.calculatedSize
  }

  clear(): void {
    this.entries.clear()
  }
}
