/**
 * The HTTP rules of the cache: what may be stored and for how long (RFC 9111), which headers are
 * replayed, conditional requests, and signs that a response was cut short.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import type { StoredHeaders } from './entry.js'
import { parseVary } from './key.js'

/** Never stored: per-connection, per-request, recomputed, or written by the cache itself. */
const NOT_STORED = new Set([
  'set-cookie', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length',
  'proxy-connection', 'upgrade', 'trailer', 'te', 'age', 'x-cache', 'cache-status',
])

/** Request headers hidden from the handler on a fill, so it produces a full 200 the cache can store. */
export const CONDITIONAL_REQUEST_HEADERS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'range', 'if-range'] as const

/** Hides conditional and range headers from the handler; returns them, to be put back afterwards. */
export function hideConditionals(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const hidden: Record<string, string | string[]> = {}
  for (const name of CONDITIONAL_REQUEST_HEADERS) {
    const value = headers[name]
    if (value === undefined) continue
    hidden[name] = value
    delete headers[name]
  }
  return hidden
}

export type NotStoredReason = 'status' | 'set-cookie' | 'cache-control' | 'vary' | 'too-large' | 'expired'

function text(value: OutgoingHttpHeader | undefined): string {
  if (value === undefined) return ''
  return Array.isArray(value) ? value.join(',') : String(value)
}

/** Cache-Control directives by lowercase name; a value without quotes, or '' when none. The first of a name wins. */
export function directives(value: OutgoingHttpHeader | string | string[] | undefined): Map<string, string> {
  const found = new Map<string, string>()
  if (value === undefined) return found
  for (const directive of text(value).split(',')) {
    const eq = directive.indexOf('=')
    const name = (eq === -1 ? directive : directive.slice(0, eq)).trim().toLowerCase()
    if (name === '' || found.has(name)) continue
    found.set(name, eq === -1 ? '' : directive.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1'))
  }
  return found
}

/** `private`, `no-store` and `no-cache` all keep a response out of a shared cache. */
export function forbidsSharedCache(cacheControl: OutgoingHttpHeader | undefined): boolean {
  if (cacheControl === undefined) return false
  const found = directives(cacheControl)
  return found.has('private') || found.has('no-store') || found.has('no-cache')
}

/** A request's `Cache-Control: no-store`: its response must not be stored (RFC 9111 §5.2.1.5). */
export function requestForbidsStore(cacheControl: string | undefined): boolean {
  return cacheControl !== undefined && /(^|,)\s*no-store\s*(,|$)/i.test(cacheControl)
}

/** How long an entry is fresh and may be served stale, in ms. */
export interface Lifetimes {
  ttlMs: number
  swrMs: number
  sieMs: number
}

/** What the route allows: its `ttl` (or the response's own, with `ttl: 'origin'`) and stale windows. */
export interface FreshnessRules {
  ttlMs: number
  fromOrigin: boolean
  swrMs: number
  sieMs: number
}

/** A delta-seconds value; anything else counts as 0 (RFC 9111 §1.2.2: stale). */
function seconds(value: string): number {
  return /^\d+$/.test(value) ? Number(value) * 1000 : 0
}

/**
 * The response's own freshness (s-maxage, then max-age, then Expires against Date), minus its
 * Age; `undefined` when it says nothing.
 */
function originFreshnessMs(cc: Map<string, string>, headers: OutgoingHttpHeaders, now: number): number | undefined {
  const age = seconds(text(headers.age).trim())
  const maxAge = cc.get('s-maxage') ?? cc.get('max-age')
  if (maxAge !== undefined) return seconds(maxAge) - age
  if (headers.expires === undefined) return undefined
  const expires = Date.parse(text(headers.expires))
  const date = headers.date === undefined ? now : Date.parse(text(headers.date))
  // An Expires (or Date) that does not parse means "already expired".
  return Number.isFinite(expires) && Number.isFinite(date) ? expires - date - age : 0
}

/**
 * How long a response may be kept (RFC 9111 §4.2): the route's ttl capped by the response's own
 * freshness, or with `ttl: 'origin'` the response's alone. `undefined` when it is already stale
 * (max-age=0, a past Expires) or, in origin mode, says nothing. `must-revalidate` and
 * `proxy-revalidate` forbid serving it stale, unless the response itself grants a stale window.
 */
export function lifetimesOf(headers: OutgoingHttpHeaders, rules: FreshnessRules, now: number): Lifetimes | undefined {
  const cc = directives(headers['cache-control'])
  const own = originFreshnessMs(cc, headers, now)
  const ttlMs = rules.fromOrigin ? own : own === undefined ? rules.ttlMs : Math.min(rules.ttlMs, own)
  if (ttlMs === undefined || ttlMs <= 0) return undefined
  const swr = cc.get('stale-while-revalidate')
  const sie = cc.get('stale-if-error')
  const revalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate')
  return {
    ttlMs,
    swrMs: swr !== undefined && rules.fromOrigin ? seconds(swr) : revalidate ? 0 : rules.swrMs,
    sieMs: sie !== undefined && rules.fromOrigin ? seconds(sie) : revalidate ? 0 : rules.sieMs,
  }
}

/** What `notStoredReason` judges by. */
export interface StoreRules extends FreshnessRules {
  statuses: ReadonlySet<number>
  maxBodyBytes: number
}

/** Why a response cannot be stored, judged on its status and headers; `undefined` if it can. */
export function notStoredReason(status: number, headers: OutgoingHttpHeaders, rules: StoreRules, now: number): NotStoredReason | undefined {
  if (!rules.statuses.has(status)) return 'status'
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  if (forbidsSharedCache(headers['cache-control'])) return 'cache-control'
  if (parseVary(headers.vary) === '*') return 'vary'
  const length = headers['content-length']
  if (length !== undefined && Number(length) > rules.maxBodyBytes) return 'too-large'
  if (lifetimesOf(headers, rules, now) === undefined) return 'expired'
  return undefined
}

/** A body shorter or longer than the response's own Content-Length was cut short (or padded). */
export function lengthMismatch(status: number, headers: OutgoingHttpHeaders, body: Buffer): boolean {
  const length = headers['content-length']
  return length !== undefined && status !== 204 && Number(text(length)) !== body.length
}

/**
 * Errors Express's router (2.3 and later) has seen pass through `next(err)` for this request: one
 * that appears while the handler runs means the response came from an error path (a custom
 * error handler ending a half-sent body), so it is not stored. Older routers keep no such record.
 */
const ROUTER_ERRORS = Symbol.for('router.tracing.publishedErrors')

export function routerErrors(req: object): number {
  const seen = (req as { [ROUTER_ERRORS]?: { size?: unknown } })[ROUTER_ERRORS]
  return typeof seen?.size === 'number' ? seen.size : 0
}

function same(a: OutgoingHttpHeader | undefined, b: OutgoingHttpHeader | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  return text(a) === text(b) && Array.isArray(a) === Array.isArray(b)
}

/**
 * The headers to replay on hits: what the handler set, minus headers the cache never stores and
 * minus headers that upstream middleware had already set (unchanged) before the cache ran, since
 * that middleware sets them afresh on every hit (request ids, CORS, security headers).
 */
export function headersToStore(headers: OutgoingHttpHeaders, upstream: OutgoingHttpHeaders): StoredHeaders {
  const stored: StoredHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NOT_STORED.has(name) || same(value, upstream[name])) continue
    stored[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return stored
}

/** A strong validator for a body that is replayed byte for byte. */
export function generateEtag(body: Buffer): string {
  return `"${body.length.toString(16)}-${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
}

function opaque(tag: string): string {
  const trimmed = tag.trim()
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed
}

/** RFC 9110 §13.1.2: weak comparison; `*` matches any stored response. */
export function ifNoneMatchMatches(header: string, etag: string | string[] | undefined): boolean {
  if (header.trim() === '*') return true
  if (typeof etag !== 'string') return false
  const wanted = opaque(etag)
  return header.split(',').some((candidate) => opaque(candidate) === wanted)
}

/** Whether a conditional request can be answered with 304 from the stored headers. */
export function isNotModified(requestHeaders: { 'if-none-match'?: string | undefined; 'if-modified-since'?: string | undefined }, stored: StoredHeaders): boolean {
  const inm = requestHeaders['if-none-match']
  if (inm !== undefined) return ifNoneMatchMatches(inm, stored.etag)
  const ims = requestHeaders['if-modified-since']
  const lastModified = stored['last-modified']
  if (ims === undefined || typeof lastModified !== 'string') return false
  const since = Date.parse(ims)
  const modified = Date.parse(lastModified)
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since
}

/** Headers a 304 carries (RFC 9110 §15.4.5), besides the cache's own. */
export const NOT_MODIFIED_HEADERS: readonly string[] = ['cache-control', 'content-location', 'etag', 'expires', 'vary', 'last-modified']
