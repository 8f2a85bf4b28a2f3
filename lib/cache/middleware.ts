/**
 * The `kit.cache(options)` middleware decides, per request, which path it takes:
 *
 *   bypass   not GET/HEAD, Authorization, or `skip`             -> the handler, untouched
 *   hit      fresh entry (one HGET; a second for a Vary variant) -> written from the stored bytes
 *   stale    within staleWhileRevalidate                         -> STALE now, one background refresh
 *   follow   this instance already fills the key                -> await that fill's response
 *   lead     anything else                                       -> a Fill runs the handler (fill.ts)
 *
 * A Redis problem never reaches the client: the manager answers from memory within
 * commandTimeoutMs, and anything unexpected from the store counts as a miss.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { invalidArgument } from '../core/errors.js'
import type { Decoded, StoredResponse } from './entry.js'
import { Exchange } from './exchange.js'
import { Fill, type FillSetup } from './fill.js'
import { Flights, type Flight } from './flight.js'
import { normalizeUrl, variantField, type CacheKey } from './key.js'
import { freshResponse } from './lookup.js'
import { parseCacheOptions, showValue, type CacheConfig, type CacheOptions } from './options.js'
import { missDetail, Responder } from './respond.js'
import type { CacheRuntime } from './runtime.js'
import type { Lookup } from './types.js'

function checkKey(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw invalidArgument('cache', `the \`key\` function must return a non-empty string, got ${showValue(id)}`)
  return id
}

export function createCacheMiddleware(runtime: CacheRuntime, options?: Readonly<Partial<CacheOptions>>): RequestHandler {
  const cache = new CacheMiddleware(runtime, parseCacheOptions(options))
  runtime.ctx.register()
  return function cacheMiddleware(req: Request, res: Response, next: NextFunction): void {
    cache.handle(new Exchange(req, res, next))
  }
}

/** One `kit.cache(options)`: its config, and the decision for each request. */
class CacheMiddleware implements FillSetup {
  readonly responder: Responder

  constructor(readonly runtime: CacheRuntime, readonly config: CacheConfig) {
    this.responder = new Responder(config.name, config.headers)
  }

  /** The common case, a fresh hit without Vary, is answered here; everything else in `serve`. */
  handle(ex: Exchange): void {
    const key = this.keyOf(ex)
    if (key === undefined) return
    const { reader, store } = this.runtime
    if (!store.onMemory) {
      reader.read(key, 'b').then((first) => {
        const hit = freshResponse(first, Date.now())
        if (hit) this.responder.answer(ex, hit, 'HIT', this.responder.hit)
        else return this.serve(ex, key, false, first ?? null)
        return undefined
      }).catch((error: unknown) => this.failed(ex, error))
      return
    }
    // While memory serves, the read is synchronous: a hit costs no promise at all.
    try {
      const first = reader.firstFromMemory(key)
      const hit = freshResponse(first, Date.now())
      if (hit) this.responder.answer(ex, hit, 'HIT', this.responder.hit)
      else this.serve(ex, key, false, first ?? null).catch((error: unknown) => this.failed(ex, error))
    } catch (error) {
      this.failed(ex, error)
    }
  }

  /** The request's cache key, or `undefined` when it bypasses the cache or a user callback threw. */
  private keyOf(ex: Exchange): CacheKey | undefined {
    const { req, res } = ex
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.bypass(ex, 'fwd=method')
    if (req.headers.authorization !== undefined && !this.config.allowAuthorization) return this.bypass(ex, 'fwd=bypass; detail=authorization')
    const { skip, key } = this.config
    try {
      if (skip?.(req, res)) return this.bypass(ex, 'fwd=bypass; detail=skip')
      return this.runtime.keys.entry(key ? checkKey(key(req)) : normalizeUrl(req.originalUrl ?? req.url))
    } catch (error) {
      ex.reject(error)
      return undefined
    }
  }

  /** Everything but a plain fresh hit. `first`: field `b`, when already read (null = nothing). */
  private async serve(ex: Exchange, key: CacheKey, retried: boolean, first?: Decoded | null): Promise<void> {
    const found = await this.runtime.reader.lookup(ex.req.headers, key, first)
    const response = found.response
    const now = Date.now()
    if (response) {
      const age = now - response.storedAt
      if (age < response.ttlMs) { this.responder.answer(ex, response, 'HIT', this.responder.hit); return }
      if (age < response.ttlMs + response.swrMs) { this.stale(ex, found, response); return }
    }
    const flight = this.runtime.flights.get(Flights.id(found))
    if (flight) { await this.follow(ex, key, flight, retried); return }
    if (ex.req.method === 'HEAD') { this.responder.label(ex.res, 'MISS', missDetail(found)); ex.proceed(); return }
    const fallback = response && now - response.storedAt < response.ttlMs + response.sieMs ? response : undefined
    await new Fill(this, ex, found, fallback).lead()
  }

  private stale(ex: Exchange, found: Lookup, response: StoredResponse): void {
    this.responder.answer(ex, response, 'STALE', this.responder.staleWhileRevalidate)
    // Only a GET refreshes: the handler answers HEAD without a body, which must not be stored.
    if (ex.req.method === 'GET' && !this.runtime.flights.has(Flights.id(found))) new Fill(this, ex, found).revalidate()
  }

  /** Waits for the fill another request of this instance is running. */
  private async follow(ex: Exchange, key: CacheKey, flight: Flight, retried: boolean): Promise<void> {
    const result = await flight.result
    if (result && (result.vary === undefined || variantField(result.vary, ex.req.headers) === result.field)) {
      const responder = this.responder
      responder.answer(ex, result.response, result.stale ? 'STALE' : 'HIT', result.stale ? responder.collapsedStale : responder.collapsedMiss)
      return
    }
    // Another variant, or nothing storable: look again once (the variant may now be known), then run.
    if (result && !retried) { await this.serve(ex, key, true); return }
    this.responder.label(ex.res, 'MISS', 'fwd=uri-miss')
    ex.proceed()
  }

  private bypass(ex: Exchange, detail: string): undefined {
    this.responder.label(ex.res, 'BYPASS', detail)
    ex.proceed()
    return undefined
  }

  private failed(ex: Exchange, error: unknown): void {
    if (ex.fail(error)) return
    this.runtime.warnOnce('ERR_KIT_CACHE_INTERNAL', `a cached response failed after it started: ${(error as Error).message}`)
  }
}
