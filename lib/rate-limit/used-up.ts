/**
 * For a limit given as a function, only express-rate-limit knows it, once per request: this reads
 * its decision from the request (`used` against `limit`) and tells the store, whose memory tier for
 * clients that used up their limit is spared by eviction. A numeric limit needs none of this: the
 * store compares the count itself.
 */
import type { NextFunction, Request, Response } from 'express'
import type { RateLimitInfo, RateLimitRequestHandler } from 'express-rate-limit'
import type { FailoverRateLimitStore } from './store.js'

export function reportUsedUp(store: FailoverRateLimitStore, property: string, middleware: RateLimitRequestHandler): RateLimitRequestHandler {
  const rateLimitReportingUsedUp = function rateLimitReportingUsedUp(req: Request, res: Response, next: NextFunction): Promise<void> {
    // express-rate-limit's middleware is async and never rejects (it passes errors to next()).
    return Promise.resolve(middleware(req, res, next)).then(() => {
      const info = (req as unknown as Record<string, RateLimitInfo | undefined>)[property]
      if (info !== undefined) store.usedUpIfLimited(info.key, info.used, info.limit)
    })
  }
  return Object.assign(rateLimitReportingUsedUp, { resetKey: middleware.resetKey, getKey: middleware.getKey })
}
