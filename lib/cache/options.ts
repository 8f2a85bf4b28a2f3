/**
 * `kit.cache(options)`: the public option types and their one-time parsing into a fully-required
 * config. Anything wrong is reported when the middleware is created, never per request.
 */
import type { Request, Response } from 'express'
import { closestName, invalidOption } from '../core/errors.js'

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

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function option(name: string): string {
  return `cache \`${name}\``
}

function show(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  try {
    return `\`${JSON.stringify(value) ?? String(value)}\``
  } catch {
    return `\`${String(value)}\``
  }
}

function seconds(value: unknown, name: string, fallback: number, allowZero: boolean): number {
  if (value === undefined) return fallback * 1000
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw invalidOption(option(name), `is ${show(value)}`,
      `Use ${allowZero ? 'zero or a positive' : 'a positive'} number of seconds (default ${fallback}).`)
  }
  return Math.round(value * 1000)
}

function integer(value: unknown, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidOption(option(name), `is ${show(value)}`, `Use a whole number of at least ${min} (default ${fallback}).`)
  }
  return value
}

function boolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidOption(option(name), `is ${show(value)}`, `Use true or false (default ${fallback}).`)
  return value
}

function fn<T>(value: unknown, name: string, example: string): T | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw invalidOption(option(name), `is ${show(value)}`, `Use a function, e.g. ${example}.`)
  return value as T
}

function statuses(value: unknown): ReadonlySet<number> {
  if (value === undefined) return new Set([200])
  const fix = 'Use a non-empty list of status codes from 200 to 599 other than 206 and 304, e.g. [200, 404].'
  if (!Array.isArray(value) || value.length === 0) throw invalidOption(option('statuses'), `is ${show(value)}`, fix)
  for (const status of value as unknown[]) {
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599 || status === 206 || status === 304) {
      throw invalidOption(option('statuses'), `contains ${show(status)}`, fix)
    }
  }
  return new Set(value as number[])
}

function tags(value: unknown): CacheConfig['tags'] {
  if (value === undefined) return []
  if (typeof value === 'function') return value as CacheConfig['tags']
  if (Array.isArray(value) && value.every((tag) => typeof tag === 'string' && tag !== '')) return [...value as string[]]
  throw invalidOption(option('tags'), `is ${show(value)}`,
    "Use a list of non-empty strings or a function (req, res) => ['scan:' + req.params.target].")
}

/** Parses `kit.cache(options)`; throws `ERR_KIT_INVALID_OPTION` naming the option and the fix. */
export function parseCacheOptions(options: Readonly<Partial<CacheOptions>> | undefined): CacheConfig {
  const given = options ?? {}
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw invalidOption('kit.cache(options)', 'must be an object', 'Call kit.cache() or kit.cache({ ttl: 60 }).')
  }
  for (const name of Object.keys(given)) {
    if ((KNOWN as readonly string[]).includes(name)) continue
    const guess = closestName(name, KNOWN) ?? ALIASES[name]
    throw invalidOption(option(name), 'is not an option',
      guess ? `Did you mean \`${guess}\`?` : `Known options: ${KNOWN.join(', ')}.`)
  }
  const name = given.name ?? 'express-redis-kit'
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw invalidOption(option('name'), `is ${show(name)}`, "Use a token without spaces or quotes, e.g. 'api-cache'.")
  }
  return {
    ttlMs: seconds(given.ttl, 'ttl', 300, false),
    swrMs: seconds(given.staleWhileRevalidate, 'staleWhileRevalidate', 0, true),
    sieMs: seconds(given.staleIfError, 'staleIfError', 0, true),
    statuses: statuses(given.statuses),
    key: fn(given.key, 'key', '(req) => req.path'),
    tags: tags(given.tags),
    maxBodyBytes: integer(given.maxBodyBytes, 'maxBodyBytes', 1024 * 1024, 1),
    allowAuthorization: boolean(given.allowAuthorization, 'allowAuthorization', false),
    skip: fn(given.skip, 'skip', "(req) => req.query.fresh === '1'"),
    lockTtlMs: integer(given.lockTtlMs, 'lockTtlMs', 10_000, 1),
    lockWaitMs: integer(given.lockWaitMs, 'lockWaitMs', 1000, 0),
    headers: boolean(given.headers, 'headers', true),
    name,
  }
}
