/**
 * The HTTP rules of the cache: what may be stored, which headers are replayed, conditional
 * requests, and the RFC 9211 Cache-Status value.
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

export type NotStoredReason = 'status' | 'set-cookie' | 'cache-control' | 'vary' | 'too-large'

function text(value: OutgoingHttpHeader | undefined): string {
  if (value === undefined) return ''
  return Array.isArray(value) ? value.join(',') : String(value)
}

/** `private`, `no-store` and `no-cache` all keep a response out of a shared cache. */
export function forbidsSharedCache(cacheControl: OutgoingHttpHeader | undefined): boolean {
  if (cacheControl === undefined) return false
  for (const directive of text(cacheControl).split(',')) {
    const name = directive.split('=', 1)[0]?.trim().toLowerCase()
    if (name === 'private' || name === 'no-store' || name === 'no-cache') return true
  }
  return false
}

/** Why a response cannot be stored, judged on its status and headers; `undefined` if it can. */
export function notStoredReason(status: number, headers: OutgoingHttpHeaders, statuses: ReadonlySet<number>, maxBodyBytes: number): NotStoredReason | undefined {
  if (!statuses.has(status)) return 'status'
  if (headers['set-cookie'] !== undefined) return 'set-cookie'
  if (forbidsSharedCache(headers['cache-control'])) return 'cache-control'
  if (parseVary(headers.vary) === '*') return 'vary'
  const length = headers['content-length']
  if (length !== undefined && Number(length) > maxBodyBytes) return 'too-large'
  return undefined
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
