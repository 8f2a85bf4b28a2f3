/**
 * Counts each limiter's decisions (allowed / limited) by the backend that counted the hit. Only
 * the middleware knows both the count and the limit (which may be a function of the request), so
 * the decision is read from what express-rate-limit leaves on the request: `used` hits against
 * `limit`. Labels are the limiter's name and two fixed sets: never a client key or a URL. Each
 * decision is also a message on the rate-limit diagnostics channel while someone subscribes.
 */
import type { NextFunction, Request, Response } from 'express'
import type { RateLimitInfo, RateLimitRequestHandler } from 'express-rate-limit'
import type { FeatureContext } from '../core/context.js'
import { listening, publish, type Series } from '../core/metrics.js'

type Decision = 'allowed' | 'limited'

export function countDecisions(ctx: FeatureContext, limiter: string, property: string, middleware: RateLimitRequestHandler): RateLimitRequestHandler {
  /** allowed/redis, allowed/memory, limited/redis, limited/memory: bound on first use. */
  const series: (Series | undefined)[] = [undefined, undefined, undefined, undefined]
  const count = (decision: Decision): void => {
    const backend = ctx.backend
    const at = (decision === 'limited' ? 2 : 0) + (backend === 'redis' ? 0 : 1)
    const found = series[at] ?? (series[at] = ctx.metrics.rateLimit.bind({ limiter, decision, backend }))
    found.add()
    if (listening('rateLimit')) publish('rateLimit', () => ({ limiter, decision, backend }))
  }
  const rateLimitWithMetrics = function rateLimitWithMetrics(req: Request, res: Response, next: NextFunction): Promise<void> {
    const fields = req as unknown as Record<string, RateLimitInfo | undefined>
    const before = fields[property]
    // express-rate-limit's handler is async and never rejects (it passes errors to next()).
    return (middleware(req, res, next) as Promise<void>).then(() => {
      const info = fields[property]
      // Unchanged: skipped, or the store failed and passOnStoreError let the request through.
      if (info === undefined || info === before) return
      count(info.used > info.limit ? 'limited' : 'allowed')
    })
  }
  return Object.assign(rateLimitWithMetrics, { resetKey: middleware.resetKey, getKey: middleware.getKey })
}
