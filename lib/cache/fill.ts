/**
 * One miss, from lock to stored entry. A `Fill` is created per miss and owns its state: the lookup,
 * the lock token, the flight its followers wait on, and what the handler must not see or store.
 *
 * - In one instance, concurrent misses of a key share one fill (a Flight): the first request
 *   runs the handler, the others await its response.
 * - Across instances, a lock field in the entry's hash lets one instance fill; the others answer
 *   a stale entry if they have one, else poll briefly (lockWaitMs) for the entry, else run the
 *   handler themselves without storing.
 * - A fill is stored only while its lock is still held and no invalidation covering it happened
 *   since it started, so an invalidation is never undone by a slow handler.
 * - A fill is stored only if it is whole (no error path ended it, its Content-Length holds) and
 *   impersonal (the handler did not write to a session), for as long as the response allows.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { invalidArgument } from '../core/errors.js'
import { sessionInUse } from '../core/request-marks.js'
import { captureThrough, type Captured, type HeadVerdict, type Originals } from './capture.js'
import { captureDetached } from './capture-detached.js'
import type { CacheCounters } from './counters.js'
import { encodeResponse, encodeVary, lifetimeMs, type StoredResponse } from './entry.js'
import type { Exchange } from './exchange.js'
import { Flights, type Flight } from './flight.js'
import { forbidsSharedCache, generateEtag, headersToStore, hideConditionals, lengthMismatch, lifetimesOf, notStoredReason, routerErrors } from './http.js'
import { lockFieldOf, parseVary, variantField } from './key.js'
import { showValue, type CacheConfig } from './options.js'
import { missDetail, type Responder, type StatusLine } from './respond.js'
import type { CacheRuntime } from './runtime.js'
import type { Lookup } from './types.js'

/** What a fill needs from the middleware that started it. */
export interface FillSetup {
  readonly config: CacheConfig
  readonly runtime: CacheRuntime
  readonly responder: Responder
  readonly counters: CacheCounters
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function checkTags(tags: unknown): readonly string[] {
  if (!Array.isArray(tags) || !tags.every((tag): tag is string => typeof tag === 'string' && tag !== '')) {
    throw invalidArgument('cache', `the \`tags\` function must return a list of non-empty strings, got ${showValue(tags)}`)
  }
  return tags
}

export class Fill {
  private readonly id: string
  private readonly flight: Flight
  /** Names this fill in the lock, so its write and release only succeed while it still holds it. */
  private readonly token = randomBytes(12).toString('base64url')
  /** Only a fill holding the lock of `found.field` writes to Redis (and releases it). */
  private locked = false
  /** The invalidation count when the handler started: a later one covering the entry wins. */
  private since = 0
  /** Router errors of the request when the handler started: one more means an error path answered. */
  private errorsBefore = 0
  /** Headers upstream middleware set before the handler ran: they set them again on every hit. */
  private upstream: OutgoingHttpHeaders = {}
  /** Conditional headers hidden from the handler, put back once it is done. */
  private hidden: IncomingHttpHeaders = {}
  /** The 5xx that a stale entry replaced (stale-if-error), for Cache-Status. */
  private failedStatus = 0
  /** A background refresh (stale-while-revalidate), counted as `revalidated` once stored. */
  private refresh = false
  /** Whether the response was written to the store. */
  private stored = false
  /** Ends the fill's span (see `traced`). */
  private finished: () => void = () => {}

  /**
   * Registers the flight at once, so concurrent misses of the same key follow this fill.
   * `fallback`: a stale entry that may still answer while another instance fills, or on a 5xx.
   */
  constructor(private readonly setup: FillSetup, private readonly ex: Exchange, private found: Lookup,
    private readonly fallback?: StoredResponse) {
    this.id = Flights.id(found)
    this.flight = setup.runtime.flights.start(this.id)
  }

  /** The first miss of a key in this instance: take the lock, or wait for whoever holds it. */
  async lead(): Promise<void> {
    this.locked = await this.acquire()
    if (!this.locked) {
      if (this.fallback) {
        this.setup.counters.count(this.ex, 'stale')
        this.answer(this.fallback, 'STALE', this.setup.responder.updating)
        return
      }
      if (await this.waitForOtherInstance()) return
    }
    this.runThrough()
  }

  /**
   * Stale-while-revalidate: once the stale answer went out, runs the handler in the background
   * with `upstream`, the headers middleware ahead of the cache had set on this request.
   */
  revalidate(upstream: OutgoingHttpHeaders): void {
    this.since = this.setup.runtime.invalidations.current
    this.upstream = upstream
    this.refresh = true
    this.ex.afterResponse(() => {
      this.acquire().then((locked) => {
        if (!locked) { this.abandon(); return }
        this.locked = true
        this.runDetached()
      }).catch((error: unknown) => {
        this.abandon()
        this.setup.runtime.warnOnce('ERR_KIT_CACHE_REVALIDATE', `a background refresh failed: ${(error as Error).message}`)
      })
    })
  }

  /** Answers from the store instead of running the handler, and hands the answer to the followers. */
  private answer(response: StoredResponse, xCache: 'HIT' | 'STALE', status: StatusLine): void {
    this.setup.responder.answer(this.ex, response, xCache, status)
    this.flight.settle({ response, vary: this.found.vary, field: this.found.field, stale: xCache === 'STALE' })
    this.end()
  }

  /** Another instance holds the lock: poll (bounded by lockWaitMs) for its entry or the lock. True when answered. */
  private async waitForOtherInstance(): Promise<boolean> {
    const deadline = Date.now() + this.setup.config.lockWaitMs
    for (let delay = 10; Date.now() < deadline; delay = Math.min(delay * 2, 100)) {
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())))
      this.found = await this.setup.runtime.reader.lookup(this.ex.req.headers, this.found.key)
      const response = this.found.response
      if (response && Date.now() - response.storedAt < response.ttlMs) {
        this.setup.counters.count(this.ex, 'collapsed')
        this.answer(response, 'HIT', this.setup.responder.filledElsewhere)
        return true
      }
      this.locked = await this.acquire()
      if (this.locked) return false
    }
    // Out of time: the handler runs without the lock, so what it sends is not written to Redis.
    this.found = { ...this.found, response: undefined }
    return false
  }

  /** Runs the handler with its response copied on the way to the client. */
  private runThrough(): void {
    const { req, res } = this.ex
    const { responder, counters } = this.setup
    this.start()
    this.upstream = res.getHeaders()
    this.hidden = hideConditionals(req.headers)
    // With a stale fallback the result is known at the head: the stale entry, or the handler's.
    if (!this.fallback) counters.count(this.ex, this.found.failed ? 'error' : 'miss')
    responder.label(res, 'MISS', missDetail(this.found))
    captureThrough(res, {
      maxBodyBytes: this.setup.config.maxBodyBytes,
      onHead: (status, headers) => this.judge(status, headers),
      afterHead: (headers) => headers['set-cookie'] === undefined && !forbidsSharedCache(headers['cache-control']),
      onSwallow: (originals) => this.answerStaleIfError(originals),
      onDone: (captured) => {
        Object.assign(req.headers, this.hidden)
        counters.count(this.ex, 'miss')
        this.complete(captured)
      },
    })
    this.ex.proceed()
  }

  private start(): void {
    this.since = this.setup.runtime.invalidations.current
    this.errorsBefore = routerErrors(this.ex.req)
    this.traced()
  }

  /** The handler run, as an OpenTelemetry span when the kit's telemetry is on: it ends with the fill. */
  private traced(): void {
    const { runtime, counters } = this.setup
    const done = new Promise<void>((resolve) => { this.finished = resolve })
    const attributes = { 'cache.name': counters.label(this.ex), 'cache.refresh': this.refresh }
    runtime.ctx.span('express-redis-kit cache fill', attributes, (span) => done.then(() => { span?.setAttribute('cache.stored', this.stored) }))
      .catch(() => {})
  }

  /** Judges the handler's status and headers before anything is sent. */
  private judge(status: number, headers: OutgoingHttpHeaders): HeadVerdict {
    const { config, counters } = this.setup
    if (this.fallback && status >= 500) {
      this.failedStatus = status
      counters.count(this.ex, 'stale')
      return 'swallow'
    }
    counters.count(this.ex, this.found.failed ? 'error' : 'miss')
    return notStoredReason(status, headers, config, Date.now()) === undefined ? 'store' : 'skip'
  }

  /** The handler failed with a 5xx: the stale entry answers instead, through the real writeHead/end. */
  private answerStaleIfError(originals: Originals): void {
    const fallback = this.fallback
    if (!fallback) return
    const { req, res } = this.ex
    const { responder } = this.setup
    // Drop what the failing handler set, keep what upstream middleware set.
    for (const header of res.getHeaderNames()) if (!(header in this.upstream)) res.removeHeader(header)
    for (const [header, value] of Object.entries(this.upstream)) if (value !== undefined) res.setHeader(header, value)
    Object.assign(req.headers, this.hidden)
    res.statusCode = fallback.status
    const status = responder.status(`fwd=stale; fwd-status=${this.failedStatus}; ttl={ttl}; detail=stale-if-error`)
    responder.answer(this.ex, fallback, 'STALE', status, originals)
    this.flight.settle({ response: fallback, vary: this.found.vary, field: this.found.field, stale: true })
  }

  /** Runs the handler against a shadow response; abandoned when it outlives the lock. */
  private runDetached(): void {
    const { config } = this.setup
    this.errorsBefore = routerErrors(this.ex.req)
    this.traced()
    hideConditionals(this.ex.req.headers)
    const timer = setTimeout(() => detached.abandon(), config.lockTtlMs).unref()
    const detached = captureDetached(this.ex.res, {
      maxBodyBytes: config.maxBodyBytes,
      upstream: this.upstream,
      onDone: (captured) => {
        clearTimeout(timer)
        const storable = captured && notStoredReason(captured.status, captured.headers, config, Date.now()) === undefined
        this.complete(storable ? captured : undefined)
      },
    })
    this.ex.proceed()
  }

  /** Why a captured response must not be stored even though its head allowed it; `undefined` if it may. */
  private spoiled(captured: Captured): string | undefined {
    if (lengthMismatch(captured.status, captured.headers, captured.body)) return 'content-length'
    if (routerErrors(this.ex.req) > this.errorsBefore) return 'error'
    if (!this.setup.config.shareAcrossSessions && sessionInUse(this.ex.req)) return 'session'
    return undefined
  }

  /** Turns a captured response into an entry, hands it to the followers and stores it. */
  private complete(captured: Captured | undefined): void {
    const whole = captured && this.spoiled(captured) === undefined ? captured : undefined
    const lifetimes = whole && lifetimesOf(whole.headers, this.setup.config, Date.now())
    const tags = lifetimes && this.tags()
    const vary = whole && parseVary(whole.headers.vary)
    // `Vary: *` names no variant to store under; an invalidation made since the start must win.
    if (!whole || !lifetimes || !tags || vary === undefined || vary === '*'
      || this.setup.runtime.invalidations.coversSince(this.since, this.found.key.id, tags)) {
      this.giveUp()
      return
    }
    const response = this.entryOf(whole, tags, lifetimes)
    const varies = vary.length > 0
    const field = varies ? variantField(vary, this.ex.req.headers, this.found.key) : this.found.key.base
    this.flight.settle({ response, vary: varies ? vary : undefined, field, stale: false })
    this.store(response, field, varies ? encodeVary(vary) : undefined)
  }

  /** The entry's tags; `undefined` (logged once) when the user's `tags` function fails. */
  private tags(): readonly string[] | undefined {
    const { config, runtime } = this.setup
    if (typeof config.tags !== 'function') return config.tags
    try {
      return checkTags(config.tags(this.ex.req, this.ex.res))
    } catch (error) {
      runtime.warnOnce('ERR_KIT_CACHE_TAGS', `the cache \`tags\` function failed, so the response was not stored: ${(error as Error).message}`)
      return undefined
    }
  }

  private entryOf(captured: Captured, tags: readonly string[], lifetimes: { ttlMs: number; swrMs: number; sieMs: number }): StoredResponse {
    const headers = headersToStore(captured.headers, this.upstream)
    if (headers.etag === undefined) headers.etag = generateEtag(captured.body)
    return { status: captured.status, headers, body: captured.body, storedAt: Date.now(), ...lifetimes, tags: [...tags] }
  }

  /** The flight is ended only after the write, so no second fill of the key starts meanwhile. */
  private store(response: StoredResponse, field: string, vary: Buffer | undefined): void {
    const { runtime, config, counters } = this.setup
    const bytes = encodeResponse(response)
    runtime.store.put(this.found.key, {
      field, lockField: lockFieldOf(this.found.field), token: this.locked ? this.token : undefined,
      bytes, vary, lifetimeMs: lifetimeMs(response), tags: response.tags, maxVariants: config.maxVariants,
    }).then((stored) => {
      if (!stored) return
      this.stored = true
      counters.stored(this.ex, bytes.length)
      if (this.refresh) counters.revalidated(this.ex)
    }, (error: unknown) => {
      runtime.warnOnce('ERR_KIT_CACHE_WRITE', `a response could not be stored: ${(error as Error).message}`)
      this.release()
    }).finally(() => this.end())
  }

  /** Nothing to store: the followers run the handler themselves. */
  private abandon(): void {
    this.flight.settle(undefined)
    this.end()
  }

  private giveUp(): void {
    this.abandon()
    this.release()
  }

  private end(): void {
    this.setup.runtime.flights.end(this.id, this.flight)
    this.finished()
  }

  /** Problems with the lock never reach the client: the handler then runs without storing. */
  private async acquire(): Promise<boolean> {
    const { config, runtime } = this.setup
    try {
      return await runtime.store.acquire(this.found.key, lockFieldOf(this.found.field), this.token, config.lockTtlMs)
    } catch (error) {
      runtime.warnOnce('ERR_KIT_CACHE_LOCK', `a cache lock failed; the handler ran without storing: ${(error as Error).message}`)
      return false
    }
  }

  private release(): void {
    if (this.locked) this.setup.runtime.store.release(this.found.key, lockFieldOf(this.found.field), this.token).catch(() => {})
  }
}
