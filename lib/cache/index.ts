/** The response cache: `kit.cache(options)` and `kit.invalidate(target)`. */
import type { RequestHandler } from 'express'
import { createCacheMiddleware } from './middleware.js'
import type { CacheOptions } from './options.js'
import type { CacheRuntime } from './runtime.js'

export type { CacheOptions, InvalidateTarget } from './options.js'
export { normalizeUrl } from './key.js'

export { CacheRuntime } from './runtime.js'

/** A caching middleware on the kit's shared cache runtime (see `Kit#cache`). */
export function createCache(runtime: CacheRuntime, options?: Readonly<Partial<CacheOptions>>): RequestHandler {
  return createCacheMiddleware(runtime, options)
}
