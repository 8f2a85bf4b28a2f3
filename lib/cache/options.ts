/**
 * `kit.cache(options)`: the public option types and their one-time parsing, through the kit's
 * options layer, into a fully-required config. Anything wrong is reported when the middleware is
 * created, never per request.
 */
import type { Request, Response } from 'express'
import { MAX_TIMER_MS, Options, show } from '../core/options.js'

export interface CacheOptions {
  /**
   * Seconds a stored response is served as fresh, at most: a handler's own `Cache-Control:
   * s-maxage` / `max-age` or `Expires` shortens it (and `no-store`, `private`, `no-cache`,
   * `max-age=0` or a past `Expires` keep the response out). `'origin'` takes the freshness from the
   * response alone (`s-maxage`, then `max-age`, then `Expires`, and its `stale-while-revalidate` /
   * `stale-if-error`); a response without any is not stored. Defaults to `300`.
   */
  ttl: number | 'origin'
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
   * are added to it, and so are the host and protocol (unless `shareAcrossHosts`). The keys of a
   * cache given a `name` live under `<name>:`. Errors thrown here go to `next(err)`.
   * Defaults to the URL path, normalized the way Express routes it, and the query as the app parses it.
   */
  key: (req: Request) => string
  /**
   * Only these query parameters enter the default key; any others (`?utm_source=…`, `?cb=…`) are
   * ignored, so they share one entry. List every parameter the handler reads. Defaults to all of them.
   */
  query: readonly string[]
  /**
   * The most entries one path (one key) keeps: hosts, spellings, queries and Vary variants
   * together. The oldest go first, so a cache-busting flood (`?cb=<random>`) stays bounded.
   * Defaults to `1000`.
   */
  maxVariants: number
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
  /**
   * Requests whose session holds data (a logged-in user, a cart: kit.session() or any
   * express-session) bypass the cache, and a response whose handler wrote to the session is not
   * stored, unless this is `true`. Set it only on routes whose answer is the same for every
   * session. Defaults to `false`.
   */
  shareAcrossSessions: boolean
  /**
   * The host and protocol of a request (as Express reads them: `X-Forwarded-*` only with `trust
   * proxy`) are part of its key, so a response built from a forged `Host` never reaches another
   * host's visitors. `true` shares entries across hosts. Defaults to `false`.
   */
  shareAcrossHosts: boolean
  /**
   * A successful (2xx/3xx) POST, PUT, PATCH or DELETE through this middleware invalidates its URL,
   * and its same-origin `Location` and `Content-Location` (RFC 9111 §4.4). Defaults to `true`.
   */
  invalidateOnWrite: boolean
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
  /**
   * The cache's name: in the RFC 9211 `Cache-Status` header, as the `cache` label of its metrics,
   * and as the namespace of its custom `key`s. Defaults to `'express-redis-kit'`.
   */
  name: string
}

/** `kit.invalidate(target)`: exactly one of these. */
export type InvalidateTarget =
  | { key: string; prefix?: never; tag?: never }
  | { prefix: string; key?: never; tag?: never }
  | { tag: string; key?: never; prefix?: never }

/** The parsed options, all required, durations in milliseconds. */
export interface CacheConfig {
  /** The route's freshness; with `fromOrigin`, only the fallback stale windows apply. */
  ttlMs: number
  /** `ttl: 'origin'`: freshness comes from the response alone. */
  fromOrigin: boolean
  swrMs: number
  sieMs: number
  statuses: ReadonlySet<number>
  key: ((req: Request) => string) | undefined
  /** The query parameters that enter the key; `undefined` for all. */
  query: ReadonlySet<string> | undefined
  maxVariants: number
  tags: readonly string[] | ((req: Request, res: Response) => readonly string[])
  maxBodyBytes: number
  allowAuthorization: boolean
  shareAcrossSessions: boolean
  shareAcrossHosts: boolean
  invalidateOnWrite: boolean
  skip: ((req: Request, res: Response) => boolean) | undefined
  lockTtlMs: number
  lockWaitMs: number
  headers: boolean
  name: string
  /** Whether the app chose the name (then it labels metrics and namespaces custom keys). */
  named: boolean
}

export const DEFAULT_NAME = 'express-redis-kit'

const KNOWN: readonly (keyof CacheOptions)[] = [
  'ttl', 'staleWhileRevalidate', 'staleIfError', 'statuses', 'key', 'query', 'maxVariants', 'tags', 'maxBodyBytes',
  'allowAuthorization', 'shareAcrossSessions', 'shareAcrossHosts', 'invalidateOnWrite', 'skip', 'lockTtlMs',
  'lockWaitMs', 'headers', 'name',
]

/** Known aliases from other caches, so the error can say what to use instead. */
const ALIASES: Readonly<Record<string, keyof CacheOptions>> = {
  duration: 'ttl', expire: 'ttl', expires: 'ttl', maxAge: 'ttl', stale: 'staleWhileRevalidate',
  swr: 'staleWhileRevalidate', sie: 'staleIfError', statusCodes: 'statuses', keyGenerator: 'key',
  maxSize: 'maxBodyBytes', queryParams: 'query', allowedQuery: 'query', maxKeys: 'maxVariants', maxEntries: 'maxVariants',
  shareSessions: 'shareAcrossSessions', allowSession: 'shareAcrossSessions', allowSessions: 'shareAcrossSessions',
  shareHosts: 'shareAcrossHosts', ignoreHost: 'shareAcrossHosts',
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

function query(options: Options, value: unknown, key: unknown): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && name !== '')) {
    options.fail('query', `is ${showValue(value)}`, "Use a list of the query parameter names the handler reads, e.g. ['page', 'sort'] ([] ignores the query).")
  }
  if (key !== undefined) options.fail('query', 'is set together with `key`', 'Use one: `query` narrows the default key; a custom `key` decides alone.')
  return new Set(value as string[])
}

function ttl(options: Options, value: unknown): { ttlMs: number; fromOrigin: boolean } {
  if (value === 'origin') return { ttlMs: 0, fromOrigin: true }
  if (typeof value === 'string') {
    options.fail('ttl', `is ${showValue(value)}`, "Use a positive number of seconds (default 300), or 'origin' to take the freshness from the response's Cache-Control and Expires.")
  }
  return { ttlMs: options.seconds(value, 'ttl', 300), fromOrigin: false }
}

/** Parses `kit.cache(options)`; throws `ERR_KIT_INVALID_OPTION` naming the option and the fix. */
export function parseCacheOptions(options: Readonly<Partial<CacheOptions>> | undefined): CacheConfig {
  const o = new Options('cache')
  // `null` has always meant "no options", like `undefined`.
  const given = o.object<CacheOptions>(options ?? undefined, 'kit.cache(options)', 'kit.cache() or kit.cache({ ttl: 60 })')
  o.known(given, KNOWN, ALIASES)
  return {
    ...ttl(o, given.ttl),
    swrMs: o.seconds(given.staleWhileRevalidate, 'staleWhileRevalidate', 0, true),
    sieMs: o.seconds(given.staleIfError, 'staleIfError', 0, true),
    statuses: statuses(o, given.statuses),
    key: o.fn<CacheConfig['key']>(given.key, 'key', '(req) => req.path'),
    query: query(o, given.query, given.key),
    maxVariants: o.integer(given.maxVariants, 'maxVariants', 1000, 1, 1_000_000),
    tags: tags(o, given.tags),
    maxBodyBytes: o.integer(given.maxBodyBytes, 'maxBodyBytes', 1024 * 1024, 1),
    allowAuthorization: o.boolean(given.allowAuthorization, 'allowAuthorization', false),
    shareAcrossSessions: o.boolean(given.shareAcrossSessions, 'shareAcrossSessions', false),
    shareAcrossHosts: o.boolean(given.shareAcrossHosts, 'shareAcrossHosts', false),
    invalidateOnWrite: o.boolean(given.invalidateOnWrite, 'invalidateOnWrite', true),
    skip: o.fn<CacheConfig['skip']>(given.skip, 'skip', "(req) => req.query.fresh === '1'"),
    // A background refresh is abandoned by a timer of this length, and Node fires longer timers at once.
    lockTtlMs: o.integer(given.lockTtlMs, 'lockTtlMs', 10_000, 1, MAX_TIMER_MS),
    lockWaitMs: o.integer(given.lockWaitMs, 'lockWaitMs', 1000, 0),
    headers: o.boolean(given.headers, 'headers', true),
    name: o.string(given.name, 'name', DEFAULT_NAME, "Use a token without spaces or quotes, e.g. 'api-cache'.", TOKEN),
    named: given.name !== undefined,
  }
}
