/**
 * `kit.cache(options)`: the public option types and their one-time parsing, through the kit's
 * options layer, into a fully-required config. Anything wrong is reported when the middleware is
 * created, never per request.
 */
import type { Request, Response } from 'express'
import { MAX_TIMER_MS, Options, show } from '../core/options.js'

export interface CacheOptions {
  /** Seconds a stored response is served as fresh. Defaults to `300`. */
  ttl: number
  /**
   * Seconds after `ttl` during which a stale entry is still answered at once (`X-Cache: STALE`)
   * while one request refreshes it in the background. Defaults to `0`.
   */
  staleWhileRevalidate: number
  /**
   * Seconds after `ttl` during which a stale entry is answered instead of a 5xx from the handler,
   * or while another instance holds the refill lock. Defaults to `0`.
   */
  staleIfError: number
  /** Response statuses that are stored (206 and 304 never are). Defaults to `[200]`. */
  statuses: readonly number[]
  /**
   * The cache key of a request. GET and HEAD share it; headers named by the response's `Vary`
   * are added to it. Errors thrown here go to `next(err)`.
   * Defaults to the URL path and query (`req.originalUrl`) with query parameters sorted by name.
   */
  key: (req: Request) => string
  /**
   * Tags for `kit.invalidate({ tag })`: a list, or a function called once the handler has
   * responded (so it may read `res.locals`). Defaults to `[]`.
   */
  tags: readonly string[] | ((req: Request, res: Response) => readonly string[])
  /** Larger bodies are passed through and not stored. Defaults to `1048576` (1 MiB). */
  maxBodyBytes: number
  /**
   * Requests with an `Authorization` header bypass the cache unless this is `true`; only set it
   * on routes whose response is the same for every caller (or that send `Vary: Authorization`).
   * Defaults to `false`.
   */
  allowAuthorization: boolean
  /** Return `true` to bypass the cache for a request. Errors go to `next(err)`. Defaults to never. */
  skip: (req: Request, res: Response) => boolean
  /**
   * How long one instance may hold the cross-instance refill lock of a key before another may
   * take it over. Defaults to `10000`.
   */
  lockTtlMs: number
  /**
   * How long a miss waits for another instance that holds the refill lock before running the
   * handler itself (without storing). `0` never waits. Defaults to `1000`.
   */
  lockWaitMs: number
  /** Send `X-Cache` and `Cache-Status` (`Age` is always sent on cached answers). Defaults to `true`. */
  headers: boolean
  /** The cache's name in the RFC 9211 `Cache-Status` header. Defaults to `'express-redis-kit'`. */
  name: string
}

/** `kit.invalidate(target)`: exactly one of these. */
export type InvalidateTarget =
  | { key: string; prefix?: never; tag?: never }
  | { prefix: string; key?: never; tag?: never }
  | { tag: string; key?: never; prefix?: never }

/** The parsed options, all required, durations in milliseconds. */
export interface CacheConfig {
  ttlMs: number
  swrMs: number
  sieMs: number
  statuses: ReadonlySet<number>
  key: ((req: Request) => string) | undefined
  tags: readonly string[] | ((req: Request, res: Response) => readonly string[])
  maxBodyBytes: number
  allowAuthorization: boolean
  skip: ((req: Request, res: Response) => boolean) | undefined
  lockTtlMs: number
  lockWaitMs: number
  headers: boolean
  name: string
}

const KNOWN: readonly (keyof CacheOptions)[] = [
  'ttl', 'staleWhileRevalidate', 'staleIfError', 'statuses', 'key', 'tags', 'maxBodyBytes',
  'allowAuthorization', 'skip', 'lockTtlMs', 'lockWaitMs', 'headers', 'name',
]

/** Known aliases from other caches, so the error can say what to use instead. */
const ALIASES: Readonly<Record<string, keyof CacheOptions>> = {
  duration: 'ttl', expire: 'ttl', expires: 'ttl', maxAge: 'ttl', stale: 'staleWhileRevalidate',
  swr: 'staleWhileRevalidate', sie: 'staleIfError', statusCodes: 'statuses', keyGenerator: 'key',
  maxSize: 'maxBodyBytes',
}

/** An HTTP token (RFC 9110), as Cache-Status requires of a cache's name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

const STATUSES_FIX = 'Use a non-empty list of status codes from 200 to 599 other than 206 and 304, e.g. [200, 404].'

/** A bad value as every cache message shows it (the kit's one way). */
export const showValue = show

function statuses(options: Options, value: unknown): ReadonlySet<number> {
  if (value === undefined) return new Set([200])
  if (!Array.isArray(value) || value.length === 0) options.fail('statuses', `is ${showValue(value)}`, STATUSES_FIX)
  for (const status of value as unknown[]) {
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599 || status === 206 || status === 304) {
      options.fail('statuses', `contains ${showValue(status)}`, STATUSES_FIX)
    }
  }
  return new Set(value as number[])
}

function tags(options: Options, value: unknown): CacheConfig['tags'] {
  if (value === undefined) return []
  if (typeof value === 'function') return value as CacheConfig['tags']
  if (Array.isArray(value) && value.every((tag) => typeof tag === 'string' && tag !== '')) return [...value as string[]]
  return options.fail('tags', `is ${showValue(value)}`,
    "Use a list of non-empty strings or a function (req, res) => ['scan:' + req.params.target].")
}

/** Parses `kit.cache(options)`; throws `ERR_KIT_INVALID_OPTION` naming the option and the fix. */
export function parseCacheOptions(options: Readonly<Partial<CacheOptions>> | undefined): CacheConfig {
  const o = new Options('cache')
  // `null` has always meant "no options", like `undefined`.
  const given = o.object<CacheOptions>(options ?? undefined, 'kit.cache(options)', 'kit.cache() or kit.cache({ ttl: 60 })')
  o.known(given, KNOWN, ALIASES)
  return {
    ttlMs: o.seconds(given.ttl, 'ttl', 300),
    swrMs: o.seconds(given.staleWhileRevalidate, 'staleWhileRevalidate', 0, true),
    sieMs: o.seconds(given.staleIfError, 'staleIfError', 0, true),
    statuses: statuses(o, given.statuses),
    key: o.fn<CacheConfig['key']>(given.key, 'key', '(req) => req.path'),
    tags: tags(o, given.tags),
    maxBodyBytes: o.integer(given.maxBodyBytes, 'maxBodyBytes', 1024 * 1024, 1),
    allowAuthorization: o.boolean(given.allowAuthorization, 'allowAuthorization', false),
    skip: o.fn<CacheConfig['skip']>(given.skip, 'skip', "(req) => req.query.fresh === '1'"),
    // A background refresh is abandoned by a timer of this length, and Node fires longer timers at once.
    lockTtlMs: o.integer(given.lockTtlMs, 'lockTtlMs', 10_000, 1, MAX_TIMER_MS),
    lockWaitMs: o.integer(given.lockWaitMs, 'lockWaitMs', 1000, 0),
    headers: o.boolean(given.headers, 'headers', true),
    name: o.string(given.name, 'name', 'express-redis-kit', "Use a token without spaces or quotes, e.g. 'api-cache'.", TOKEN),
  }
}
