/**
 * The `kit.cache(options)` middleware. Per request:
 *
 *   lookup (one HGET; a second for a Vary variant; synchronous while memory serves)
 *     fresh                        -> HIT, written straight from the stored bytes
 *     stale, within SWR            -> STALE now, one background refresh per key
 *     missing / stale              -> one request per key and instance runs the handler (others
 *                                     await it); across instances a lock in the entry's hash lets
 *                                     one fill while the others wait briefly or answer stale
 *
 * A Redis problem never reaches the client: the manager answers from memory within
 * commandTimeoutMs, and anything unexpected from the store counts as a miss.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { invalidArgument } from '../core/errors.js'
import type { Originals } from './capture.js'
import type { Decoded, StoredResponse } from './entry.js'
import { isNotModified, NOT_MODIFIED_HEADERS } from './http.js'
import { normalizeUrl, variantField, type CacheKey } from './key.js'
import { parseCacheOptions, type CacheConfig, type CacheOptions } from './options.js'
import { Filler, type Ctx, type Lookup } from './fill.js'
import { type CacheRuntime, type Flight } from './runtime.js'

/** Builds the Cache-Status value from the entry's remaining freshness in seconds. */
export type StatusLine = (ttl: number) => string

function checkKey(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw invalidArgument('cache', `the \`key\` function must return a non-empty string, got ${JSON.stringify(id) ?? String(id)}`)
  return id
}

/** What every path of one middleware needs: its config, the kit's runtime, and the answers. */
export class Responder {
  readonly hit: StatusLine

  constructor(readonly config: CacheConfig, readonly runtime: CacheRuntime) {
    const name = config.name
    this.hit = (ttl) => `${name}; hit; ttl=${ttl}`
  }

  status(params: string): StatusLine {
    const name = this.config.name
    return (ttl) => `${name}; ${params.replace('{ttl}', String(ttl))}`
  }

  /** Writes a stored response, or a 304 for it, with Age, X-Cache and Cache-Status. */
  answer(ctx: Ctx, response: StoredResponse, xCache: string, cacheStatus: StatusLine, via?: Originals): void {
    const { req, res } = ctx
    const now = Date.now()
    const stored = response.headers
    let status = response.status
    let body: StoredResponse['body'] | undefined = req.method === 'HEAD' ? undefined : response.body
    if (status === 200 && (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined)
      && isNotModified(req.headers, stored)) {
      status = 304
      body = undefined
      for (const name of NOT_MODIFIED_HEADERS) {
        const value = stored[name]
        if (value !== undefined) res.setHeader(name, value)
      }
    } else {
      for (const name in stored) res.setHeader(name, stored[name] as string | string[])
      if (status !== 204) res.setHeader('content-length', response.body.length)
    }
    res.setHeader('age', Math.max(0, Math.floor((now - response.storedAt) / 1000)))
    if (this.config.headers) {
      res.setHeader('x-cache', xCache)
      res.setHeader('cache-status', cacheStatus(Math.floor((response.storedAt + response.ttlMs - now) / 1000)))
    }
    if (via) via.writeHead.call(res, status)
    else res.writeHead(status)
    const end = (via?.end ?? res.end) as (chunk?: Buffer | string, encoding?: BufferEncoding) => unknown
    if (body === undefined) end.call(res)
    else if (typeof body === 'string') end.call(res, body, 'latin1')
    else end.call(res, body)
  }

  label(res: Response, xCache: string, cacheStatus: string): void {
    if (!this.config.headers) return
    res.setHeader('x-cache', xCache)
    res.setHeader('cache-status', `${this.config.name}; ${cacheStatus}`)
  }
}

export function createCacheMiddleware(runtime: CacheRuntime, options?: Readonly<Partial<CacheOptions>>): RequestHandler {
  const config = parseCacheOptions(options)
  runtime.ctx.register()
  const { store, flights, entries } = runtime
  const responder = new Responder(config, runtime)
  const filler = new Filler(responder)

  function fresh(decoded: Decoded | undefined, now: number): StoredResponse | undefined {
    return decoded?.kind === 'response' && now - decoded.response.storedAt < decoded.response.ttlMs ? decoded.response : undefined
  }

  /** Anything the store cannot answer counts as a miss; the reason is logged once. */
  async function read(key: CacheKey, field: string): Promise<Decoded | undefined> {
    try {
      return entries.read(`${key.redisKey}\u0000${field}`, await store.get(key, field))
    } catch (error) {
      runtime.warnOnce('ERR_KIT_CACHE_READ', `a cache read failed and was treated as a miss: ${(error as Error).message}`)
      return undefined
    }
  }

  /** Finds the entry for this request; `first` is field `b` when the caller already read it. */
  async function lookup(ctx: Ctx, key: CacheKey, first?: Decoded | null): Promise<Lookup> {
    const decoded = first === undefined ? await read(key, 'b') : first ?? undefined
    if (decoded === undefined) return { key, field: 'b', vary: undefined, response: undefined }
    if (decoded.kind === 'response') return { key, field: 'b', vary: undefined, response: decoded.response }
    const field = variantField(decoded.names, ctx.req.headers)
    const variant = await read(key, field)
    return { key, field, vary: decoded.names, response: variant?.kind === 'response' ? variant.response : undefined }
  }

  /** Everything but a plain fresh hit. `first`: field `b`, when already read (null = nothing). */
  async function serve(ctx: Ctx, key: CacheKey, retried: boolean, first?: Decoded | null): Promise<void> {
    const found = await lookup(ctx, key, first)
    const response = found.response
    const now = Date.now()
    if (response) {
      const age = now - response.storedAt
      if (age < response.ttlMs) { responder.answer(ctx, response, 'HIT', responder.hit); return }
      if (age < response.ttlMs + response.swrMs) {
        responder.answer(ctx, response, 'STALE', responder.status('hit; ttl={ttl}; detail=stale-while-revalidate'))
        // Only a GET refreshes: the handler answers HEAD without a body, which must not be stored.
        if (ctx.req.method === 'GET') filler.revalidate(ctx, found)
        return
      }
    }
    const fallback = response && now - response.storedAt < response.ttlMs + response.sieMs ? response : undefined
    const flight = flights.get(Filler.flightId(found))
    if (flight) { await follow(ctx, key, flight, retried); return }
    if (ctx.req.method === 'HEAD') { responder.label(ctx.res, 'MISS', Filler.missDetail(found)); Filler.proceed(ctx); return }
    await filler.lead(ctx, found, fallback, lookup)
  }

  /** Waits for the fill another request of this instance is running. */
  async function follow(ctx: Ctx, key: CacheKey, flight: Flight, retried: boolean): Promise<void> {
    const result = await flight.result
    if (result && (result.vary === undefined || variantField(result.vary, ctx.req.headers) === result.field)) {
      responder.answer(ctx, result.response, result.stale ? 'STALE' : 'HIT',
        responder.status(result.stale ? 'hit; ttl={ttl}; collapsed' : 'fwd=uri-miss; collapsed'))
      return
    }
    // Another variant, or nothing storable: look again once (the variant may now be known), then run.
    if (result && !retried) { await serve(ctx, key, true); return }
    responder.label(ctx.res, 'MISS', 'fwd=uri-miss')
    Filler.proceed(ctx)
  }

  function failed(ctx: Ctx, error: unknown): void {
    if (!ctx.proceeded && !ctx.res.headersSent) { ctx.proceeded = true; ctx.next(error); return }
    runtime.warnOnce('ERR_KIT_CACHE_INTERNAL', `a cached response failed after it started: ${(error as Error).message}`)
  }

  function bypass(ctx: Ctx, detail: string): void {
    responder.label(ctx.res, 'BYPASS', detail)
    Filler.proceed(ctx)
  }

  return function cacheMiddleware(req: Request, res: Response, next: NextFunction): void {
    const ctx: Ctx = { req, res, next, proceeded: false }
    const method = req.method
    if (method !== 'GET' && method !== 'HEAD') { bypass(ctx, 'fwd=method'); return }
    if (req.headers.authorization !== undefined && !config.allowAuthorization) { bypass(ctx, 'fwd=bypass; detail=authorization'); return }
    let id: string
    try {
      if (config.skip?.(req, res)) { bypass(ctx, 'fwd=bypass; detail=skip'); return }
      id = config.key ? checkKey(config.key(req)) : normalizeUrl(req.originalUrl ?? req.url)
    } catch (error) {
      next(error)
      return
    }
    const key = runtime.keys.entry(id)
    // The common case, a fresh hit on an id without Vary, is answered here; everything else in serve().
    if (store.onMemory) {
      try {
        const first = entries.read(`${key.redisKey}\u0000b`, store.getFromMemory(key, 'b'))
        const hit = fresh(first, Date.now())
        if (hit) responder.answer(ctx, hit, 'HIT', responder.hit)
        else serve(ctx, key, false, first ?? null).catch((error: unknown) => failed(ctx, error))
      } catch (error) {
        failed(ctx, error)
      }
    } else {
      read(key, 'b').then((first) => {
        const hit = fresh(first, Date.now())
        if (hit) responder.answer(ctx, hit, 'HIT', responder.hit)
        else return serve(ctx, key, false, first ?? null)
        return undefined
      }).catch((error: unknown) => failed(ctx, error))
    }
  }
}
