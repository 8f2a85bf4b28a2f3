/** The response cache: `kit.cache(options)` and `kit.invalidate(target)`. */
import type { RequestHandler } from 'express'
import type { FeatureContext } from '../core/context.js'
import { createCacheMiddleware } from './middleware.js'
import type { CacheOptions, InvalidateTarget } from './options.js'
import { cacheRuntime } from './runtime.js'

export type { CacheOptions, InvalidateTarget } from './options.js'
export { normalizeUrl } from './key.js'

/** A caching middleware bound to the manager's connection (see `Kit#cache`). */
export function createCache(ctx: FeatureContext, options?: Readonly<Partial<CacheOptions>>): RequestHandler {
  return createCacheMiddleware(cacheRuntime(ctx), options)
}

/** Removes cached responses by key, key prefix or tag (see `Kit#invalidate`). */
export function invalidateCache(ctx: FeatureContext, target: InvalidateTarget): Promise<void> {
  return cacheRuntime(ctx).invalidate(target)
}
