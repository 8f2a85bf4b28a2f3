/**
 * Writing a cached answer: the stored response (or a 304 for it) with `Age`, plus `X-Cache` and
 * the RFC 9211 `Cache-Status` when enabled. Every hit goes through `answer`, so it stays lean.
 */
import type { Response } from 'express'
import type { Originals } from './capture.js'
import type { StoredResponse } from './entry.js'
import type { Exchange } from './exchange.js'
import { isNotModified, NOT_MODIFIED_HEADERS } from './http.js'
import type { Lookup } from './types.js'

/** Builds the Cache-Status value from the entry's remaining freshness in seconds. */
export type StatusLine = (ttl: number) => string

/** Why a miss goes to the handler, as Cache-Status says it. */
export function missDetail(found: Lookup): string {
  return found.response ? 'fwd=stale' : found.vary ? 'fwd=vary-miss' : 'fwd=uri-miss'
}

export class Responder {
  /** The Cache-Status lines used on every request, built once rather than per answer. */
  readonly hit: StatusLine
  readonly staleWhileRevalidate: StatusLine
  readonly updating: StatusLine
  readonly filledElsewhere: StatusLine
  readonly collapsedStale: StatusLine
  readonly collapsedMiss: StatusLine

  /** `name`: the cache's name in Cache-Status; `headers`: whether X-Cache and Cache-Status are sent. */
  constructor(private readonly name: string, private readonly headers: boolean) {
    this.hit = (ttl) => `${name}; hit; ttl=${ttl}`
    this.staleWhileRevalidate = this.status('hit; ttl={ttl}; detail=stale-while-revalidate')
    this.updating = this.status('hit; ttl={ttl}; detail=updating')
    this.filledElsewhere = this.status('hit; ttl={ttl}; detail=filled-elsewhere')
    this.collapsedStale = this.status('hit; ttl={ttl}; collapsed')
    this.collapsedMiss = this.status('fwd=uri-miss; collapsed')
  }

  status(params: string): StatusLine {
    const name = this.name
    return (ttl) => `${name}; ${params.replace('{ttl}', String(ttl))}`
  }

  /**
   * Writes a stored response, or a 304 for it, with Age, X-Cache and Cache-Status. `via`: the
   * response's own writeHead/end, when a capture has replaced them (stale-if-error).
   */
  answer(ex: Exchange, response: StoredResponse, xCache: string, cacheStatus: StatusLine, via?: Originals): void {
    const { req, res } = ex
    const now = Date.now()
    const stored = response.headers
    let status = response.status
    let body: StoredResponse['body'] | undefined = req.method === 'HEAD' ? undefined : response.body
    if (status === 200 && (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined)
      && isNotModified(req.headers, stored)) {
      status = 304
      body = undefined
      for (const name of NOT_MODIFIED_HEADERS) {
        const value = stored[name]
        if (value !== undefined) res.setHeader(name, value)
      }
    } else {
      for (const name in stored) res.setHeader(name, stored[name] as string | string[])
      if (status !== 204) res.setHeader('content-length', response.body.length)
    }
    res.setHeader('age', Math.max(0, Math.floor((now - response.storedAt) / 1000)))
    if (this.headers) {
      res.setHeader('x-cache', xCache)
      res.setHeader('cache-status', cacheStatus(Math.floor((response.storedAt + response.ttlMs - now) / 1000)))
    }
    if (via) via.writeHead.call(res, status)
    else res.writeHead(status)
    const end = (via?.end ?? res.end) as (chunk?: Buffer | string, encoding?: BufferEncoding) => unknown
    if (body === undefined) end.call(res)
    else if (typeof body === 'string') end.call(res, body, 'latin1')
    else end.call(res, body)
  }

  /** Marks a response the handler writes (MISS, BYPASS). */
  label(res: Response, xCache: string, cacheStatus: string): void {
    if (!this.headers) return
    res.setHeader('x-cache', xCache)
    res.setHeader('cache-status', `${this.name}; ${cacheStatus}`)
  }
}
