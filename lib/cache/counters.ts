/**
 * What one `kit.cache()` counts (issue 15): a result per request, stored bytes per fill, on the
 * kit's metrics, labelled by the cache's `name` when the app gave one, else by the Express route
 * template (`req.baseUrl + req.route.path`) when the cache sits on a route, else `default` — never
 * a URL or a key, so the label stays bounded. A hit costs one counter increment.
 */
import type { Request } from 'express'
import { publish, type Metrics } from '../core/metrics.js'
import type { Exchange } from './exchange.js'

export type CacheResult = 'hit' | 'miss' | 'stale' | 'revalidated' | 'bypass' | 'collapsed' | 'error'

/** Route templates one middleware may report under before it drops the mount path (baseUrl can hold param values). */
const MAX_TEMPLATES = 16

export class CacheCounters {
  /** The label objects of a named cache, built once. */
  private readonly fixed: Record<CacheResult, { cache: string; result: CacheResult }> | undefined
  private readonly templates = new Set<string>()

  constructor(private readonly metrics: Metrics, name: string | undefined) {
    this.fixed = name === undefined ? undefined : {
      hit: { cache: name, result: 'hit' }, miss: { cache: name, result: 'miss' }, stale: { cache: name, result: 'stale' },
      revalidated: { cache: name, result: 'revalidated' }, bypass: { cache: name, result: 'bypass' },
      collapsed: { cache: name, result: 'collapsed' }, error: { cache: name, result: 'error' },
    }
  }

  /** Counts the request's result, once per request (the first decision is the one that counts). */
  count(ex: Exchange, result: CacheResult): void {
    if (ex.counted) return
    ex.counted = true
    this.add(ex, result)
  }

  /** A background refresh stored a new entry in place of a stale one. */
  revalidated(ex: Exchange): void {
    this.add(ex, 'revalidated')
  }

  stored(ex: Exchange, bytes: number): void {
    this.metrics.cacheStoredBytes.add({ cache: this.label(ex) }, bytes)
  }

  private add(ex: Exchange, result: CacheResult): void {
    const labels = this.fixed?.[result] ?? { cache: this.label(ex), result }
    this.metrics.cacheResults.add(labels)
    publish('cache', () => ({ ...labels, method: ex.req.method }))
  }

  /** The request's `cache` label, read once per request before the handler runs (a later router may set another route). */
  label(ex: Exchange): string {
    if (this.fixed) return this.fixed.hit.cache
    ex.label ??= this.templateOf(ex.req)
    return ex.label
  }

  private templateOf(req: Request): string {
    const path = (req as { route?: { path?: unknown } }).route?.path
    if (path === undefined) return 'default'
    const template = typeof path === 'string' ? path : Array.isArray(path) ? path.map(String).join(',') : path instanceof RegExp ? path.toString() : 'default'
    const full = `${req.baseUrl ?? ''}${template}`
    if (this.templates.has(full)) return full
    if (this.templates.size >= MAX_TEMPLATES) return template
    this.templates.add(full)
    return full
  }
}
