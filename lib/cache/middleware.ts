/**
 * The `kit.cache(options)` middleware decides, per request, which path it takes:
 *
 *   bypass   not GET/HEAD, Authorization, a session in use, or `skip` -> the handler, untouched
 *   hit      fresh entry (one HGET; a second for a Vary variant)       -> written from the stored bytes
 *   stale    within staleWhileRevalidate                               -> STALE now, one background refresh
 *   follow   this instance already fills the key                      -> await that fill's response
 *   lead     anything else                                             -> a Fill runs the handler (fill.ts)
 *
 * A successful POST/PUT/PATCH/DELETE that passes through invalidates its URL (writes.ts).
 * A Redis problem never reaches the client: the manager answers from memory within
 * commandTimeoutMs, and anything unexpected from the store counts as a miss.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { OutgoingHttpHeaders } from 'node:http'
import { invalidArgument } from '../core/errors.js'
import { sessionInUse } from '../core/request-marks.js'
import { CacheCounters } from './counters.js'
import type { StoredResponse } from './entry.js'
import { Exchange } from './exchange.js'
import { Fill, type FillSetup } from './fill.js'
import { Flights, type Flight } from './flight.js'
import { requestForbidsStore } from './http.js'
import { scopeOf, variantField, type CacheKey } from './key.js'
import { freshResponse, type ReadResult } from './lookup.js'
import { decodeUnreserved, foldPath, originOf, queryPart, routingOf } from './normalize.js'
import { parseCacheOptions, showValue, type CacheConfig, type CacheOptions } from './options.js'
import { missDetail, Responder } from './respond.js'
import type { CacheRuntime } from './runtime.js'
import type { Lookup } from './types.js'
import { invalidateOnSuccess, UNSAFE_METHODS } from './writes.js'

function checkKey(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw invalidArgument('cache', `the \`key\` function must return a non-empty string, got ${showValue(id)}`)
  return id
}

function urlOf(req: Request): { path: string; query: string | undefined } {
  const url = req.originalUrl ?? req.url
  const q = url.indexOf('?')
  return q === -1 ? { path: url, query: undefined } : { path: url.slice(0, q), query: url.slice(q + 1) }
}

/** Headers as they stand, copied (a later setHeader must not change the snapshot). */
function snapshot(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const copy: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) copy[name] = Array.isArray(value) ? [...value] : value
  return copy
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
  readonly counters: CacheCounters

  constructor(readonly runtime: CacheRuntime, readonly config: CacheConfig) {
    this.responder = new Responder(config.name, config.headers)
    this.counters = new CacheCounters(runtime.ctx.metrics, config.named ? config.name : undefined)
  }

  /** The common case, a fresh hit without Vary, is answered here; everything else in `serve`. */
  handle(ex: Exchange): void {
    const key = this.keyOf(ex)
    if (key === undefined) return
    const { reader, store } = this.runtime
    if (!store.onMemory) {
      reader.read(key, key.base).then((first) => {
        const hit = freshResponse(first, Date.now())
        if (hit) this.hit(ex, hit)
        else return this.serve(ex, key, false, first ?? null)
        return undefined
      }).catch((error: unknown) => this.failed(ex, error))
      return
    }
    // While memory serves, the read is synchronous: a hit costs no promise at all.
    try {
      const first = reader.firstFromMemory(key)
      const hit = freshResponse(first, Date.now())
      if (hit) this.hit(ex, hit)
      else this.serve(ex, key, false, first ?? null).catch((error: unknown) => this.failed(ex, error))
    } catch (error) {
      this.failed(ex, error)
    }
  }

  private hit(ex: Exchange, response: StoredResponse): void {
    this.counters.count(ex, 'hit')
    this.responder.answer(ex, response, 'HIT', this.responder.hit)
  }

  /** The request's cache key, or `undefined` when it bypasses the cache or a user callback threw. */
  private keyOf(ex: Exchange): CacheKey | undefined {
    const { req, res } = ex
    const { config } = this
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.unsafe(ex)
    if (req.headers.authorization !== undefined && !config.allowAuthorization) return this.bypass(ex, 'fwd=bypass; detail=authorization')
    // One user's page must not reach another: a session with data is personal (issue 13).
    if (!config.shareAcrossSessions && sessionInUse(req)) return this.bypass(ex, 'fwd=bypass; detail=session')
    try {
      if (config.skip?.(req, res)) return this.bypass(ex, 'fwd=bypass; detail=skip')
      return this.requestKey(req)
    } catch (error) {
      ex.reject(error)
      return undefined
    }
  }

  /** The id (folded path, or the custom key) and the scope within it (origin, spelling, query). */
  private requestKey(req: Request): CacheKey {
    const { config, runtime } = this
    const origin = config.shareAcrossHosts ? '' : originOf(req)
    if (config.key) return runtime.keys.entry(this.customId(req), scopeOf(origin, '', ''))
    const url = urlOf(req)
    const path = decodeUnreserved(url.path)
    const id = foldPath(path, routingOf(req))
    const query = url.query === undefined ? '' : queryPart(req, url.query, config.query)
    return runtime.keys.entry(id, scopeOf(origin, id === path ? '' : path, query))
  }

  /** A custom key, under `<name>:` when the app named the cache. */
  private customId(req: Request): string {
    const id = checkKey((this.config.key as (req: Request) => string)(req))
    return this.config.named ? `${this.config.name}:${id}` : id
  }

  /** Other methods pass through; a successful POST/PUT/PATCH/DELETE invalidates what it changed. */
  private unsafe(ex: Exchange): undefined {
    const { req, res } = ex
    if (this.config.invalidateOnWrite && UNSAFE_METHODS.has(req.method)) {
      const own = [foldPath(decodeUnreserved(urlOf(req).path), routingOf(req))]
      if (this.config.key) {
        try {
          own.push(this.customId(req))
        } catch {
          // A key function written for GET requests: the URL itself is still invalidated.
        }
      }
      invalidateOnSuccess(req, res, own, (ids) => {
        this.runtime.invalidateIds(ids).catch((error: unknown) => {
          this.runtime.warnOnce('ERR_KIT_CACHE_INTERNAL', `the invalidation after a ${req.method} failed: ${(error as Error).message}`)
        })
      })
    }
    return this.bypass(ex, 'fwd=method')
  }

  /** Everything but a plain fresh hit. `first`: the base field, when already read (null = nothing). */
  private async serve(ex: Exchange, key: CacheKey, retried: boolean, first?: ReadResult | null): Promise<void> {
    const found = await this.runtime.reader.lookup(ex.req.headers, key, first)
    const response = found.response
    const now = Date.now()
    // RFC 9111 §5.2.1.5: a request's no-store lets it read the cache, never fill it.
    const noStore = requestForbidsStore(ex.req.headers['cache-control'])
    if (response) {
      const age = now - response.storedAt
      if (age < response.ttlMs) { this.hit(ex, response); return }
      if (age < response.ttlMs + response.swrMs) { this.stale(ex, found, response, noStore); return }
    }
    const flight = this.runtime.flights.get(Flights.id(found))
    if (flight) { await this.follow(ex, key, flight, retried); return }
    if (ex.req.method === 'HEAD' || noStore) { this.miss(ex, found, noStore ? `${missDetail(found)}; detail=no-store` : missDetail(found)); return }
    const fallback = response && now - response.storedAt < response.ttlMs + response.sieMs ? response : undefined
    await new Fill(this, ex, found, fallback).lead()
  }

  private stale(ex: Exchange, found: Lookup, response: StoredResponse, noStore: boolean): void {
    // Only a GET refreshes: the handler answers HEAD without a body, which must not be stored.
    const refresh = ex.req.method === 'GET' && !noStore && !this.runtime.flights.has(Flights.id(found))
    // What middleware ahead of the cache set on this request, before the stale answer adds its own.
    const upstream = refresh ? snapshot(ex.res.getHeaders()) : undefined
    this.counters.count(ex, 'stale')
    this.responder.answer(ex, response, 'STALE', this.responder.staleWhileRevalidate)
    if (upstream) new Fill(this, ex, found).revalidate(upstream)
  }

  /** Waits for the fill another request of this instance is running. */
  private async follow(ex: Exchange, key: CacheKey, flight: Flight, retried: boolean): Promise<void> {
    const result = await flight.result
    if (result && (result.vary === undefined || variantField(result.vary, ex.req.headers, key) === result.field)) {
      const responder = this.responder
      this.counters.count(ex, 'collapsed')
      responder.answer(ex, result.response, result.stale ? 'STALE' : 'HIT', result.stale ? responder.collapsedStale : responder.collapsedMiss)
      return
    }
    // Another variant, or nothing storable: look again once (the variant may now be known), then run.
    if (result && !retried) { await this.serve(ex, key, true); return }
    this.miss(ex, undefined, 'fwd=uri-miss')
  }

  /** The handler answers, and nothing is stored. */
  private miss(ex: Exchange, found: Lookup | undefined, detail: string): void {
    this.counters.count(ex, found?.failed ? 'error' : 'miss')
    this.responder.label(ex.res, 'MISS', detail)
    ex.proceed()
  }

  private bypass(ex: Exchange, detail: string): undefined {
    this.counters.count(ex, 'bypass')
    this.responder.label(ex.res, 'BYPASS', detail)
    ex.proceed()
    return undefined
  }

  private failed(ex: Exchange, error: unknown): void {
    this.counters.count(ex, 'error')
    if (ex.fail(error)) return
    this.runtime.warnOnce('ERR_KIT_CACHE_INTERNAL', `a cached response failed after it started: ${(error as Error).message}`)
  }
}
