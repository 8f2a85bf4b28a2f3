/**
 * Touch throttling: express-session touches the store on every request, and connect-redis answers
 * each with an EXPIRE. This remembers, per session and per instance (bounded like the near-cache),
 * the expiry this instance last wrote to Redis, and says when a touch can be skipped because that
 * expiry is close enough to the one the touch would write.
 */
import { LRUCache } from 'lru-cache'

/** connect-redis writes whole seconds (rounded up), so two writes of one expiry differ by under a second. */
export const ROUNDING_MS = 1000

export class TouchThrottle {
  /** Per session id: the earliest moment Redis expires it, as guaranteed by this instance's own writes. */
  private readonly expiry: LRUCache<string, number>

  constructor(maxEntries: number, private readonly touchAfterMs: number | undefined) {
    this.expiry = new LRUCache({ max: maxEntries })
  }

  /** The window for a session living `ttlMs`: never more than half of it, or active sessions could expire. */
  window(ttlMs: number): number {
    return Math.min(this.touchAfterMs ?? ttlMs / 10, ttlMs / 2)
  }

  /**
   * Whether Redis already keeps the session until close enough to `target`. A later known expiry
   * (the app shortened cookie.maxAge) is not close enough: Redis must forget the session sooner.
   */
  skips(sid: string, ttlMs: number, target: number): boolean {
    const window = this.window(ttlMs)
    if (window <= 0 || ttlMs <= 0) return false
    const known = this.expiry.get(sid)
    return known !== undefined && known >= target - window && known <= target + ROUNDING_MS
  }

  /** Redis now keeps the session until `expiresAt` (this instance wrote it). */
  wrote(sid: string, expiresAt: number, ttlMs: number): void {
    if (this.window(ttlMs) > 0) this.expiry.set(sid, expiresAt)
  }

  /** Redis may not have the write: touch the session next time. */
  forget(sid: string): void {
    this.expiry.delete(sid)
  }

  clear(): void {
    this.expiry.clear()
  }
}
