/**
 * What a request's key is made of, read the way Express reads the request:
 *
 * - the path: %XX of unreserved characters decoded (RFC 3986 §6.2.2), then folded the way Express
 *   routes it — lowercase unless `case sensitive routing`, one trailing slash dropped unless
 *   `strict routing`. The folded path names the entry hash: it is what invalidation and the
 *   variant cap group by. A spelling other than the folded one (`/API/x/`) is still answered from
 *   its own entry in that hash, since a handler may read `req.path` or a case-sensitive param.
 * - the query, as the app parses it (`req.query`): two URLs share an entry only when the handler
 *   sees the same parameters (`?%61=1&a=2` and `?a=2&%61=1` do not), optionally narrowed to an
 *   allow-list.
 * - the origin: protocol and host as `req.protocol` / `req.host` give them (`X-Forwarded-*`
 *   only under `trust proxy`); forwarded headers Express does not trust are added as they are,
 *   for handlers that read them directly.
 */
import type { Request } from 'express'

const UNRESERVED = /^[A-Za-z0-9\-._~]$/
const ESCAPE = /%[0-9A-Fa-f]{2}/g

/** `%61` → `a`; other escapes keep their meaning and get uppercase hex (`%2f` → `%2F`). */
export function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path
  return path.replace(ESCAPE, (escape) => {
    const char = String.fromCharCode(parseInt(escape.slice(1), 16))
    return UNRESERVED.test(char) ? char : escape.toUpperCase()
  })
}

/** How the app routes: Express's `case sensitive routing` and `strict routing` settings. */
export interface Routing {
  caseSensitive: boolean
  strict: boolean
}

/** Express's defaults: what invalidation assumes of apps it has not seen. */
export const EXPRESS_ROUTING: Routing = { caseSensitive: false, strict: false }

export function foldPath(path: string, routing: Routing): string {
  const folded = routing.caseSensitive ? path : path.toLowerCase()
  return !routing.strict && folded.length > 1 && folded.endsWith('/') ? folded.slice(0, -1) : folded
}

/**
 * Every folded form a path may have been stored under, whatever the routing of the app that
 * stored it: an invalidation removes them all (removing one too many only costs a refill).
 */
export function foldings(path: string): string[] {
  const decoded = decodeUnreserved(path)
  const forms = new Set<string>()
  for (const caseSensitive of [true, false]) {
    for (const strict of [true, false]) forms.add(foldPath(decoded, { caseSensitive, strict }))
  }
  return [...forms]
}

interface AppSettings {
  settings?: Record<string, unknown>
}

function settingsOf(req: Request): Record<string, unknown> | undefined {
  return (req.app as AppSettings | undefined)?.settings
}

export function routingOf(req: Request): Routing {
  const settings = settingsOf(req)
  return { caseSensitive: settings?.['case sensitive routing'] === true, strict: settings?.['strict routing'] === true }
}

/** Object keys sorted at every depth, arrays in order: one text per parsed query. */
function sortedKeys(_name: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const source = value as Record<string, unknown>
  return Object.fromEntries(Object.keys(source).sort().map((name) => [name, source[name]]))
}

/**
 * The query as the handler sees it: `req.query` with sorted keys ('' when empty). With the
 * app's query parser turned off, the raw query string, as it is.
 */
export function queryPart(req: Request, rawQuery: string, allow: ReadonlySet<string> | undefined): string {
  const settings = settingsOf(req)
  const parsed = settings !== undefined && !settings['query parser fn'] ? undefined : req.query as unknown
  if (parsed === undefined || parsed === null || typeof parsed !== 'object') {
    if (!allow) return rawQuery === '' ? '' : JSON.stringify(rawQuery)
    const pairs = [...new URLSearchParams(rawQuery)].filter(([name]) => allow.has(name))
    return pairs.length === 0 ? '' : JSON.stringify(pairs)
  }
  const all = parsed as Record<string, unknown>
  const names = Object.keys(all).filter((name) => !allow || allow.has(name))
  if (names.length === 0) return ''
  return JSON.stringify(allow ? Object.fromEntries(names.map((name) => [name, all[name]])) : all, sortedKeys)
}

function first(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined) return undefined
  const comma = text.indexOf(',')
  return (comma === -1 ? text : text.slice(0, comma)).trim()
}

const DEFAULT_PORT: Readonly<Record<string, string>> = { http: ':80', https: ':443' }

/**
 * The protocol and host Express derives (`req.protocol`, `req.host`): from `X-Forwarded-Proto`
 * and `X-Forwarded-Host` only when `trust proxy` trusts the peer. Lowercase, default port dropped.
 * `untrusted`: the forwarded headers Express ignored, as sent ('' when none).
 */
export function hostOf(req: Request): { protocol: string; host: string; untrusted: string } {
  const headers = req.headers
  const forwardedHost = headers['x-forwarded-host']
  const forwardedProto = headers['x-forwarded-proto']
  const socket = req.socket as (Request['socket'] & { encrypted?: boolean }) | undefined
  let protocol = socket?.encrypted ? 'https' : 'http'
  let host = headers.host ?? ''
  let untrusted = ''
  if (forwardedHost !== undefined || forwardedProto !== undefined) {
    const trust = settingsOf(req)?.['trust proxy fn']
    if (typeof trust === 'function' && (trust as (address: string | undefined, hop: number) => boolean)(socket?.remoteAddress, 0)) {
      protocol = first(forwardedProto) ?? protocol
      host = first(forwardedHost) ?? host
    } else {
      untrusted = JSON.stringify([forwardedProto ?? '', forwardedHost ?? ''])
    }
  }
  protocol = protocol.toLowerCase()
  host = host.toLowerCase()
  const port = DEFAULT_PORT[protocol]
  if (port !== undefined && host.endsWith(port)) host = host.slice(0, -port.length)
  return { protocol, host, untrusted }
}

/**
 * `<protocol>://<host>` (hostOf), plus any forwarded headers `trust proxy` keeps Express from
 * using: a handler that reads them itself still gets an entry of its own.
 */
export function originOf(req: Request): string {
  const { protocol, host, untrusted } = hostOf(req)
  return untrusted === '' ? `${protocol}://${host}` : `${protocol}://${host} ${untrusted}`
}
