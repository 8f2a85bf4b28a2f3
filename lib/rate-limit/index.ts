/**
 * `kit.rateLimit(options)`: express-rate-limit over the kit's failover store. Redis (through
 * rate-limit-redis) holds one count per client for every instance of the app; while Redis is down
 * the `onRedisDown` policy decides, and hits counted in memory reach Redis once it is back.
 */
import { rateLimit, type Logger as ExpressRateLimitLogger, type RateLimitRequestHandler, type ValueDeterminingMiddleware } from 'express-rate-limit'
import type { FeatureContext } from '../core/context.js'
import type { Log } from '../core/log.js'
import { invalidOption } from '../core/errors.js'
import { parseRateLimitOptions, type RateLimitOptions } from './options.js'
import { FailoverRateLimitStore } from './store.js'
import { reportUsedUp } from './used-up.js'
import { countDecisions } from './decisions.js'

export { FailoverRateLimitStore, type FailoverRateLimitStoreOptions } from './store.js'
export type { RateLimitOptions, RateLimitStoreOptions, RedisDownPolicy } from './options.js'

/** The names of one kit's limiters, which must differ (the kit owns one). */
export class LimiterNames {
  private readonly names = new Set<string>()

  check(name: string, given: boolean): void {
    if (!this.names.has(name)) return
    throw invalidOption('rateLimit `name`', given
      ? `'${name}' is already used by another limiter of this kit`
      : `is missing, and the default name '${name}' is already used by another limiter of this kit`,
    "Give each limiter its own name, e.g. kit.rateLimit({ windowMs: 15 * 60_000, limit: 5, name: 'login' }): "
      + 'limiters with one name would count into the same keys. To apply one limit on several routes, create it once and mount it on each.')
  }

  add(name: string): void {
    this.names.add(name)
  }
}


/** express-rate-limit's warnings (ERR_ERL_…) go to the kit's logger, one line each, with its own prefix. */
function toKitLogger(log: Log): ExpressRateLimitLogger {
  const out = log.library('express-rate-limit')
  const line = (error: unknown, message?: string): string =>
    `${message ? `${message} ` : ''}${error instanceof Error ? error.message : String(error)}`
  return {
    error: (error, message) => out.error(line(error, message)),
    warn: (error, message) => out.warn(line(error, message)),
  }
}

/** With `instances`, the limit each instance enforces on its own while Redis is down. */
function splitDuringOutage(
  ctx: FeatureContext, limit: number | ValueDeterminingMiddleware<number>, instances: number,
): ValueDeterminingMiddleware<number> {
  const outage = (): boolean => ctx.outage
  if (typeof limit === 'number') {
    const share = Math.ceil(limit / instances)
    return function limitPerInstance() { return outage() ? share : limit }
  }
  return async function limitPerInstance(request, response) {
    const full = await limit(request, response)
    return outage() ? Math.ceil(full / instances) : full
  }
}

/**
 * Builds a limiter bound to `manager`. Options are express-rate-limit's, plus `name`,
 * `onRedisDown` and `instances`; everything wrong throws here, at start-up.
 */
export function createRateLimit(ctx: FeatureContext, names: LimiterNames, options: Readonly<Partial<RateLimitOptions>> = {}): RateLimitRequestHandler {
  const config = parseRateLimitOptions(options)
  const { name, onRedisDown, instances } = config.store
  names.check(name, options.name !== undefined)

  const numeric = typeof config.limit === 'number' ? config.limit : undefined
  const store = new FailoverRateLimitStore(ctx, { name, onRedisDown }, { limit: numeric, instances })
  const limiter = rateLimit({
    ...(ctx.log.enabled ? { logger: toKitLogger(ctx.log) } : {}),
    ...config.express,
    ...(instances > 1 ? { limit: splitDuringOutage(ctx, config.limit, instances) } : {}),
    store,
  })
  const middleware = numeric === undefined ? reportUsedUp(store, config.express.requestPropertyName ?? 'rateLimit', limiter) : limiter
  names.add(name)
  ctx.register()
  return countDecisions(ctx, name, config.express.requestPropertyName ?? 'rateLimit', middleware)
}
