/**
 * Filling the cache: running the handler once per key and storing what it sent.
 *
 * - In one instance, concurrent misses of a key share one fill (a Flight): the first request
 *   runs the handler, the others await its response.
 * - Across instances, a lock field in the entry's hash lets one instance fill; the others answer
 *   a stale entry if they have one, else poll briefly (lockWaitMs) for the entry, else run the
 *   handler themselves without storing.
 * - A fill is stored only while its lock is still held and no invalidation covering it happened
 *   since it started, so an invalidation is never undone by a slow handler.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { NextFunction, Request, Response } from 'express'
import { invalidArgument } from '../core/errors.js'
import { captureDetached, captureThrough, type Captured } from './capture.js'
import { encodeResponse, encodeVary, lifetimeMs, type StoredResponse } from './entry.js'
import { CONDITIONAL_REQUEST_HEADERS, forbidsSharedCache, generateEtag, headersToStore, notStoredReason } from './http.js'
import { lockFieldOf, parseVary, variantField, type CacheKey } from './key.js'
import type { Responder } from './middleware.js'
import { Flight } from './runtime.js'

/** One request through the middleware; `next` is called at most once. */
export interface Ctx {
  req: Request
  res: Response
  next: NextFunction
  proceeded: boolean
}

export interface Lookup {
  key: CacheKey
  /** `b`, or the variant field when the id has a Vary record. */
  field: string
  vary: readonly string[] | undefined
  response: StoredResponse | undefined
}

type LookupFn = (ctx: Ctx, key: CacheKey) => Promise<Lookup>

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function newToken(): string {
  return randomBytes(12).toString('base64url')
}

/** Hides conditional and range headers from the handler, so it produces a full, storable 200. */
function hideConditionals(req: Request): IncomingHttpHeaders {
  const hidden: Record<string, string | string[]> = {}
  for (const name of CONDITIONAL_REQUEST_HEADERS) {
    const value = req.headers[name]
    if (value === undefined) continue
    hidden[name] = value
    delete req.headers[name]
  }
  return hidden
}

/** Calls `fn` once the real response has been handed to the socket (or the socket closed). */
function afterResponse(res: Response, fn: () => void): void {
  let called = false
  const once = (): void => {
    if (called) return
    called = true
    fn()
  }
  if (res.writableFinished) { process.nextTick(once); return }
  res.once('finish', once)
  res.once('close', once)
}

function checkTags(tags: unknown): readonly string[] {
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string' && tag !== '')) {
    throw invalidArgument('cache', `the \`tags\` function must return a list of non-empty strings, got ${JSON.stringify(tags) ?? String(tags)}`)
  }
  return tags
}

export class Filler {
  constructor(private readonly responder: Responder) {}

  static flightId(found: Pick<Lookup, 'key' | 'field'>): string {
    return `${found.key.id}\u0000${found.field}`
  }

  static missDetail(found: Lookup): string {
    return found.response ? 'fwd=stale' : found.vary ? 'fwd=vary-miss' : 'fwd=uri-miss'
  }

  static proceed(ctx: Ctx): void {
    if (ctx.proceeded) return
    ctx.proceeded = true
    ctx.next()
  }

  private get config() { return this.responder.config }
  private get runtime() { return this.responder.runtime }

  private async acquire(key: CacheKey, lockField: string, token: string): Promise<boolean> {
    try {
      return await this.runtime.store.acquire(key, lockField, token, this.config.lockTtlMs)
    } catch (error) {
      this.runtime.warnOnce('ERR_KIT_CACHE_LOCK', `a cache lock failed; the handler ran without storing: ${(error as Error).message}`)
      return false
    }
  }

  private release(key: CacheKey, lockField: string, token: string | undefined): void {
    if (token !== undefined) this.runtime.store.release(key, lockField, token).catch(() => {})
  }

  /** Registers a flight for `found`; `done` forgets it once the store write is over. */
  private flight(found: Lookup): { flight: Flight; done: () => void } {
    const id = Filler.flightId(found)
    const flight = new Flight()
    const flights = this.runtime.flights
    flights.set(id, flight)
    return { flight, done: () => { if (flights.get(id) === flight) flights.delete(id) } }
  }

  /** The first miss of a key in this instance. */
  async lead(ctx: Ctx, found: Lookup, fallback: StoredResponse | undefined, lookup: LookupFn): Promise<void> {
    const { flight, done } = this.flight(found)
    const token = newToken()
    let current = found
    let locked = await this.acquire(found.key, lockFieldOf(found.field), token)
    if (!locked) {
      const r = this.responder
      if (fallback) {
        r.answer(ctx, fallback, 'STALE', r.status('hit; ttl={ttl}; detail=updating'))
        flight.settle({ response: fallback, vary: found.vary, field: found.field, stale: true })
        done()
        return
      }
      const waited = await this.waitForOtherInstance(ctx, found, token, lookup)
      if (waited.response) {
        r.answer(ctx, waited.response, 'HIT', r.status('hit; ttl={ttl}; detail=filled-elsewhere'))
        flight.settle({ response: waited.response, vary: waited.vary, field: waited.field, stale: false })
        done()
        return
      }
      current = waited
      locked = waited.locked
    }
    this.fill(ctx, current, fallback, locked ? token : undefined, flight, done)
  }

  /** Another instance holds the lock: poll (bounded by lockWaitMs) for its entry or the lock. */
  private async waitForOtherInstance(ctx: Ctx, found: Lookup, token: string, lookup: LookupFn): Promise<Lookup & { locked: boolean }> {
    const deadline = Date.now() + this.config.lockWaitMs
    let current: Lookup = found
    for (let delay = 10; Date.now() < deadline; delay = Math.min(delay * 2, 100)) {
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())))
      current = await lookup(ctx, found.key)
      const response = current.response
      if (response && Date.now() - response.storedAt < response.ttlMs) return { ...current, locked: false }
      if (await this.acquire(found.key, lockFieldOf(current.field), token)) return { ...current, locked: true }
    }
    return { ...current, response: undefined, locked: false }
  }

  /** Runs the handler with its response copied on the way to the client, then stores it. */
  private fill(ctx: Ctx, found: Lookup, fallback: StoredResponse | undefined, token: string | undefined, flight: Flight, done: () => void): void {
    const { req, res } = ctx
    const { config, responder } = this
    const since = this.runtime.invalidations.current
    const upstream = res.getHeaders()
    const hidden = hideConditionals(req)
    let failedStatus = 0
    responder.label(res, 'MISS', Filler.missDetail(found))
    captureThrough(res, {
      maxBodyBytes: config.maxBodyBytes,
      onHead: (status, headers) => {
        if (fallback && status >= 500) { failedStatus = status; return 'swallow' }
        return notStoredReason(status, headers, config.statuses, config.maxBodyBytes) === undefined ? 'store' : 'skip'
      },
      afterHead: (headers) => headers['set-cookie'] === undefined && !forbidsSharedCache(headers['cache-control']),
      onSwallow: (originals) => {
        if (!fallback) return
        // Stale-if-error: drop what the failing handler set, keep what upstream middleware set.
        for (const header of res.getHeaderNames()) if (!(header in upstream)) res.removeHeader(header)
        for (const [header, value] of Object.entries(upstream)) if (value !== undefined) res.setHeader(header, value)
        Object.assign(req.headers, hidden)
        res.statusCode = fallback.status
        responder.answer(ctx, fallback, 'STALE', responder.status(`fwd=stale; fwd-status=${failedStatus}; ttl={ttl}; detail=stale-if-error`), originals)
        flight.settle({ response: fallback, vary: found.vary, field: found.field, stale: true })
      },
      onDone: (captured) => {
        Object.assign(req.headers, hidden)
        this.complete(ctx, found, captured, upstream, token, since, flight, done)
      },
    })
    Filler.proceed(ctx)
  }

  /** Stale-while-revalidate: after the stale answer went out, refresh the entry in the background. */
  revalidate(ctx: Ctx, found: Lookup): void {
    if (this.runtime.flights.has(Filler.flightId(found))) return
    const { flight, done } = this.flight(found)
    const since = this.runtime.invalidations.current
    const { config } = this
    afterResponse(ctx.res, () => {
      const token = newToken()
      this.acquire(found.key, lockFieldOf(found.field), token).then((locked) => {
        if (!locked) { flight.settle(undefined); done(); return }
        hideConditionals(ctx.req)
        const timer = setTimeout(() => detached.abandon(), config.lockTtlMs).unref()
        const detached = captureDetached(ctx.res, {
          maxBodyBytes: config.maxBodyBytes,
          onDone: (captured) => {
            clearTimeout(timer)
            const storable = captured && notStoredReason(captured.status, captured.headers, config.statuses, config.maxBodyBytes) === undefined
            this.complete(ctx, found, storable ? captured : undefined, {}, token, since, flight, done)
          },
        })
        Filler.proceed(ctx)
      }).catch((error: unknown) => {
        flight.settle(undefined)
        done()
        this.runtime.warnOnce('ERR_KIT_CACHE_REVALIDATE', `a background refresh failed: ${(error as Error).message}`)
      })
    })
  }

  /** Turns a captured response into an entry, hands it to the followers and stores it. */
  private complete(ctx: Ctx, found: Lookup, captured: Captured | undefined, upstream: OutgoingHttpHeaders,
    token: string | undefined, since: number, flight: Flight, done: () => void): void {
    const { config, runtime } = this
    const { key } = found
    const lockField = lockFieldOf(found.field)
    const giveUp = (): void => { flight.settle(undefined); done(); this.release(key, lockField, token) }
    if (!captured) { giveUp(); return }
    let tags: readonly string[]
    try {
      tags = typeof config.tags === 'function' ? checkTags(config.tags(ctx.req, ctx.res)) : config.tags
    } catch (error) {
      runtime.warnOnce('ERR_KIT_CACHE_TAGS', `the cache \`tags\` function failed, so the response was not stored: ${(error as Error).message}`)
      giveUp()
      return
    }
    const vary = parseVary(captured.headers.vary)
    if (vary === '*' || runtime.invalidations.coversSince(since, key.id, tags)) { giveUp(); return }
    const headers = headersToStore(captured.headers, upstream)
    if (headers.etag === undefined) headers.etag = generateEtag(captured.body)
    const response: StoredResponse = {
      status: captured.status, headers, body: captured.body, storedAt: Date.now(),
      ttlMs: config.ttlMs, swrMs: config.swrMs, sieMs: config.sieMs, tags: [...tags],
    }
    const varies = vary.length > 0
    const field = varies ? variantField(vary, ctx.req.headers) : 'b'
    flight.settle({ response, vary: varies ? vary : undefined, field, stale: false })
    runtime.store.put(key, {
      field, lockField, token, bytes: encodeResponse(response),
      vary: varies ? encodeVary(vary) : undefined, lifetimeMs: lifetimeMs(response), tags,
    }).catch((error: unknown) => {
      runtime.warnOnce('ERR_KIT_CACHE_WRITE', `a response could not be stored: ${(error as Error).message}`)
      this.release(key, lockField, token)
    }).finally(done)
  }
}
