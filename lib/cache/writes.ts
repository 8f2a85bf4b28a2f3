/**
 * RFC 9111 §4.4: a successful (2xx/3xx) unsafe request invalidates what the cache holds for its
 * target URI, and for the same-origin URIs in its `Location` and `Content-Location`. The status is
 * read as the head goes out, and the invalidation is sent then, before the response reaches the
 * client: a GET that client sends next finds the entry gone (on this instance's connection the
 * UNLINK is queued ahead of that GET's read).
 */
import type { OutgoingHttpHeaders } from 'node:http'
import type { Request } from 'express'
import { writeHeadHeaders, type Res } from './capture.js'
import { decodeUnreserved, foldPath, hostOf, routingOf } from './normalize.js'

export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function header(headers: OutgoingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return value === undefined ? undefined : Array.isArray(value) ? value[0] : String(value)
}

/** The id (folded path) of a same-origin URI reference, resolved against the request's URL; else `undefined`. */
function sameOriginId(req: Request, reference: string | undefined): string | undefined {
  if (reference === undefined || reference === '') return undefined
  try {
    const { protocol, host } = hostOf(req)
    const base = new URL(req.originalUrl ?? req.url, `${protocol}://${host || 'localhost'}`)
    const target = new URL(reference, base)
    return target.origin === base.origin ? foldPath(decodeUnreserved(target.pathname), routingOf(req)) : undefined
  } catch {
    return undefined // not a URL
  }
}

/**
 * Calls `invalidate` with the ids to drop once the response's head shows success: `own` (the
 * request's own key ids) plus the ids of its same-origin Location and Content-Location.
 */
export function invalidateOnSuccess(req: Request, res: Res, own: readonly string[], invalidate: (ids: string[]) => void): void {
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Res
  let seen = false
  res.writeHead = function writeHeadInvalidating(this: Res, ...args: unknown[]): Res {
    if (!seen) {
      seen = true
      const status = typeof args[0] === 'number' ? args[0] : this.statusCode
      if (status >= 200 && status < 400) {
        const headers = { ...this.getHeaders(), ...writeHeadHeaders(args) }
        const ids = new Set(own)
        for (const name of ['location', 'content-location']) {
          const id = sameOriginId(req, header(headers, name))
          if (id !== undefined) ids.add(id)
        }
        invalidate([...ids])
      }
    }
    return writeHead(...args)
  }
}
