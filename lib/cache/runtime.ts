/**
 * What every `kit.cache()` middleware of one kit shares: the store, the fills in progress (for
 * in-process request coalescing), the decoded recent entries, the local invalidation log and the
 * once-only warnings.
 */
import { randomBytes } from 'node:crypto'
import type { FeatureContext } from '../core/context.js'
import type { WarningCode } from '../core/log.js'
import { EntryCache } from './entry-cache.js'
import { Flights } from './flight.js'
import { InvalidationLog, parseTarget } from './invalidate.js'
import { KeySpace } from './key.js'
import { EntryReader } from './lookup.js'
import { CacheStore } from './store.js'
import type { Target } from './types.js'

export class CacheRuntime {
  readonly ctx: FeatureContext
  readonly keys: KeySpace
  readonly store: CacheStore
  readonly flights = new Flights()
  readonly invalidations = new InvalidationLog()
  /** Decoded entries of recent hits (see entry-cache.ts). */
  readonly entries = new EntryCache()
  readonly reader: EntryReader

  constructor(ctx: FeatureContext) {
    this.ctx = ctx
    this.keys = new KeySpace(ctx.prefix)
    // The owner names this instance in the fill locks it takes (see redis-store.ts).
    this.store = new CacheStore(ctx, this.keys, randomBytes(9).toString('base64url'))
    this.reader = new EntryReader(this.store, this.entries, (code, message) => this.warnOnce(code, message))
  }

  /** Logs a problem once per code for the life of the kit, never once per request. */
  warnOnce(code: WarningCode, message: string): void {
    this.ctx.log.warnOnce(code, message)
  }

  /** `kit.invalidate(target)`. */
  invalidate(target: unknown): Promise<void> {
    let parsed: Target
    try {
      parsed = parseTarget(target)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.apply(parsed)
  }

  /** Ids whose routing is known (a write through a cache middleware): no other spelling to try. */
  invalidateIds(ids: readonly string[]): Promise<void> {
    return this.apply({ kind: 'key', ids })
  }

  private async apply(target: Target): Promise<void> {
    // Recorded before the store call, so a fill that completes meanwhile already sees it.
    this.invalidations.record(target)
    this.ctx.metrics.invalidations.add({ kind: target.kind })
    await this.store.invalidate(target)
  }
}
