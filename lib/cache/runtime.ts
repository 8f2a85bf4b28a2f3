/**
 * What every `kit.cache()` middleware of one kit shares: the store, the fills in progress (for
 * in-process request coalescing), the local invalidation log and the once-only warnings.
 */
import { randomBytes } from 'node:crypto'
import type { FeatureContext } from '../core/context.js'
import type { WarningCode } from '../core/log.js'
import type { StoredResponse } from './entry.js'
import { EntryCache } from './entry-cache.js'
import { InvalidationLog, parseTarget } from './invalidate.js'
import { KeySpace } from './key.js'
import { CacheStore } from './store.js'

/** What a fill hands to the requests that waited for it. */
export interface FlightResult {
  response: StoredResponse
  /** The Vary names of the response, when it varies. */
  vary: readonly string[] | undefined
  /** The field (variant) it was stored under: followers of another variant must not use it. */
  field: string
  stale: boolean
}

/** A fill in progress. Followers await `result`; it resolves once, possibly with `undefined`. */
export class Flight {
  readonly result: Promise<FlightResult | undefined>
  private resolveResult: (result: FlightResult | undefined) => void = () => {}
  private settled = false

  constructor() {
    this.result = new Promise((resolve) => { this.resolveResult = resolve })
  }

  settle(result: FlightResult | undefined): void {
    if (this.settled) return
    this.settled = true
    this.resolveResult(result)
  }
}

export class CacheRuntime {
  readonly ctx: FeatureContext
  readonly keys: KeySpace
  readonly store: CacheStore
  readonly flights = new Map<string, Flight>()
  readonly invalidations = new InvalidationLog()
  /** Decoded entries of recent hits (see entry-cache.ts). */
  readonly entries = new EntryCache()

  constructor(ctx: FeatureContext) {
    this.ctx = ctx
    this.keys = new KeySpace(ctx.prefix)
    this.store = new CacheStore(ctx, this.keys, randomBytes(9).toString('base64url'))
  }

  /** Logs a problem once per code for the life of the kit, never once per request. */
  warnOnce(code: WarningCode, message: string): void {
    this.ctx.log.warnOnce(code, message)
  }

  async invalidate(target: unknown): Promise<void> {
    const parsed = parseTarget(target)
    this.invalidations.record(parsed)
    await this.store.invalidate(parsed)
  }
}

