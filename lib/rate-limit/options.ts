/**
 * `kit.rateLimit(options)`: every express-rate-limit option, plus the failover store's own, parsed
 * once at start-up. What would break at request time (a fractional window that Redis rejects, a
 * policy typo) throws here with the option's name and the fix; the rest is left to
 * express-rate-limit's own validations, which keep running.
 */
import type { Options as ExpressRateLimitOptions, ValueDeterminingMiddleware } from 'express-rate-limit'
import { closestName } from '../core/errors.js'
import { MAX_TIMER_MS, Options, show } from '../core/options.js'

/** What a limiter does while Redis cannot answer. */
export type RedisDownPolicy = 'memory' | 'allow' | 'deny'

/** The failover store's own options (every other express-rate-limit option passes through). */
export interface RateLimitStoreOptions {
  /**
   * Names the limiter: its Redis keys are `<keyPrefix>rate:<name>:<client key>`, so two app
   * instances with the same name share one count, and two limiters with different names never
   * share one. Two limiters of one kit cannot have the same name (the second throws at start-up).
   * Letters, digits, `_`, `-` and `.` only. Defaults to `'default'`.
   */
  name: string
  /**
   * While Redis is down (or not yet reached): `'memory'` counts in this instance's memory,
   * `'allow'` lets every request through, `'deny'` answers every request with the limit handler
   * (429). Defaults to `'memory'`.
   */
  onRedisDown: RedisDownPolicy
  /**
   * With `onRedisDown: 'memory'`, how many app instances share the limit: during an outage each
   * one allows `Math.ceil(limit / instances)`, so the fleet as a whole stays near `limit`.
   * Defaults to `1`.
   */
  instances: number
}

/**
 * `kit.rateLimit()` options: express-rate-limit's (except `store`, which the kit provides),
 * with `standardHeaders: 'draft-8'` and `legacyHeaders: false` as defaults, plus the store's own.
 */
export type RateLimitOptions = Omit<ExpressRateLimitOptions, 'store' | 'message'> & {
  /**
   * The response body of a limited request, or a function returning it.
   * Defaults to `'Too many requests, please try again later.'`.
   */
  message: unknown
} & RateLimitStoreOptions

/** What the factory hands to express-rate-limit and to the store. */
export interface RateLimitConfig {
  store: RateLimitStoreOptions & { windowMs: number }
  /** Passed to express-rate-limit as given, with the kit's header defaults filled in. */
  express: Partial<ExpressRateLimitOptions>
  /** `limit` (or the deprecated `max`) as given; express-rate-limit's default is 5. */
  limit: number | ValueDeterminingMiddleware<number>
}

const STORE_OPTIONS: readonly string[] = ['name', 'onRedisDown', 'instances']
const POLICIES: readonly RedisDownPolicy[] = ['memory', 'allow', 'deny']
const NAME = /^[A-Za-z0-9_.-]{1,64}$/
/** express-rate-limit's default window; repeated because the store needs it before the middleware exists. */
const DEFAULT_WINDOW_MS = 60_000

const options = new Options('rateLimit')

function parseName(value: unknown): string {
  return options.string(value, 'name', 'default',
    "Use 1-64 letters, digits, '_', '-' or '.' (no ':', which separates the parts of a Redis key), e.g. name: 'login'.", NAME)
}

function parsePolicy(value: unknown): RedisDownPolicy {
  return options.oneOf(value, 'onRedisDown', POLICIES, 'memory',
    "Use 'memory' (count in this instance), 'allow' (let requests through) or 'deny' (answer 429).")
}

function parseInstances(value: unknown, policy: RedisDownPolicy): number {
  const instances = options.integer(value, 'instances', 1)
  if (policy !== 'memory' && instances !== 1) {
    options.fail('instances', `only applies to onRedisDown: 'memory' (got onRedisDown: '${policy}')`,
      "Remove `instances`, or use onRedisDown: 'memory' to split the limit between instances during an outage.")
  }
  return instances
}

function parseWindow(value: unknown): number {
  // Redis' PX takes whole milliseconds: a fractional window would fail on every request.
  if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_TIMER_MS)) {
    options.fail('windowMs', `is ${show(value)}`, `Use a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, e.g. windowMs: 15 * 60_000.`)
  }
  return (value as number | undefined) ?? DEFAULT_WINDOW_MS
}

function parseLimit(value: unknown, name: 'limit' | 'max'): number | ValueDeterminingMiddleware<number> | undefined {
  if (value === undefined || typeof value === 'function') return value as ValueDeterminingMiddleware<number> | undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    return options.fail(name, `is ${show(value)}`, 'Use the number of requests allowed per window (e.g. limit: 100), or a function (req, res) => number.')
  }
  return value
}

export function parseRateLimitOptions(raw: Readonly<Partial<RateLimitOptions>>): RateLimitConfig {
  const given = options.object<RateLimitOptions>(raw ?? {}, 'rateLimit(options)', 'kit.rateLimit() or kit.rateLimit({ windowMs: 60_000, limit: 100 })')
  if ('store' in given && given.store !== undefined) {
    options.fail('store', 'is set by the kit (Redis with a memory fallback)',
      'Remove `store`; use `name` to give this limiter its own keys, or call express-rate-limit directly for a store of your own.')
  }
  // Only the kit's own names are checked here: express-rate-limit validates the rest itself.
  for (const key of Object.keys(given)) {
    const own = closestName(key, STORE_OPTIONS)
    if (own !== undefined && own !== key) options.fail(key, 'is not an option', `Did you mean \`${own}\`?`)
  }
  const name = parseName(given.name)
  const onRedisDown = parsePolicy(given.onRedisDown)
  const instances = parseInstances(given.instances, onRedisDown)
  const windowMs = parseWindow(given.windowMs)
  const limit = parseLimit(given.limit, 'limit') ?? parseLimit(given.max, 'max') ?? 5

  const express: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(given)) {
    if (!STORE_OPTIONS.includes(key) && value !== undefined) express[key] = value
  }
  express.standardHeaders ??= 'draft-8'
  // `headers` is express-rate-limit's deprecated spelling of `legacyHeaders`: honour either.
  if (express.headers === undefined) express.legacyHeaders ??= false
  express.windowMs = windowMs
  return {
    store: { name, onRedisDown, instances, windowMs },
    express,
    limit,
  }
}

/** The options of `kit.rateLimitStore()`: the store's own, nothing of express-rate-limit's. */
export function parseRateLimitStoreOptions(raw: Readonly<Partial<{ name: string; onRedisDown: RedisDownPolicy }>> = {}): { name: string; onRedisDown: RedisDownPolicy } {
  const given = options.object<{ name: string; onRedisDown: RedisDownPolicy }>(raw, 'rateLimitStore(options)', "kit.rateLimitStore({ name: 'api' })")
  new Options('rateLimitStore').known(given, ['name', 'onRedisDown'])
  return { name: parseName(given.name), onRedisDown: parsePolicy(given.onRedisDown) }
}
