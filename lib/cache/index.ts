/**
 * The response cache: `kit.cache(options)` and `kit.invalidate(target)`. A request flows one way:
 *
 *   middleware.ts   decides: bypass / hit / stale / follow / lead        (lookup.ts reads entries)
 *                   keyed by normalize.ts (path, parsed query, origin) into key.ts's hash fields
 *   fill.ts         owns one miss: lock, wait for another instance, run the handler, complete
 *   capture*.ts     copy what the handler sends; respond.ts writes cached answers; http.ts judges
 *                   what may be stored and for how long
 *   store.ts        persists, on Redis (redis-store.ts) or the memory twin (memory-store.ts)
 *   writes.ts       a successful POST/PUT/PATCH/DELETE invalidates what it changed
 *
 * Shared shapes are in types.ts; per-kit state (store, flights, invalidation log) in runtime.ts;
 * what each request counts in counters.ts.
 */
import type { RequestHandler } from 'express'
import { createCacheMiddleware } from './middleware.js'
import type { CacheOptions } from './options.js'
import type { CacheRuntime } from './runtime.js'

export type { CacheOptions, InvalidateTarget } from './options.js'

export { CacheRuntime } from './runtime.js'

/** A caching middleware on the kit's shared cache runtime (see `Kit#cache`). */
export function createCache(runtime: CacheRuntime, options?: Readonly<Partial<CacheOptions>>): RequestHandler {
  return createCacheMiddleware(runtime, options)
}
