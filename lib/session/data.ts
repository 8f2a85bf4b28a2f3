/** What a stored session is, and how express-session's callbacks are answered. */
import type { SessionData } from 'express-session'

/** Node-style callback, as express-session passes them. */
export type SessionCallback<T> = (error: unknown, value?: T) => void

/** A stored session as returned by `all()`: its data plus its id. */
export type StoredSession = SessionData & { id: string }

type Check = (value: unknown) => boolean
const optional = (check: Check): Check => (value) => value === undefined || value === null || check(value)
const isBoolean: Check = (value) => typeof value === 'boolean'
const isText: Check = (value) => typeof value === 'string'
const isDate = (value: unknown): boolean =>
  (typeof value === 'string' || value instanceof Date) && !Number.isNaN(new Date(value).getTime())

/**
 * What express-session's Cookie accepts when it revives a stored cookie. Anything else makes it
 * throw later, while the response is written (`originalMaxAge: "x"` left Express 5 requests hanging
 * and became an unhandled rejection on Express 4), so such a session is refused here, on read.
 */
const STORED_COOKIE: readonly (readonly [string, Check])[] = Object.entries({
  originalMaxAge: optional((value) => typeof value === 'number' && !Number.isNaN(value)),
  maxAge: optional((value) => typeof value === 'number' && !Number.isNaN(value)),
  expires: optional(isDate),
  httpOnly: optional(isBoolean),
  secure: optional((value) => isBoolean(value) || value === 'auto'),
  partitioned: optional(isBoolean),
  path: optional(isText),
  domain: optional(isText),
  priority: optional(isText),
  sameSite: optional((value) => isBoolean(value) || isText(value)),
})

/** express-session loads only an object with a well-formed `cookie` object; anything else would become a 500 or a hang there. */
export function checkSession(value: unknown): SessionData {
  const cookie = (value as { cookie?: unknown } | null)?.cookie
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof cookie !== 'object' || cookie === null || Array.isArray(cookie)) {
    throw new Error('the stored value is not a session (an object with a cookie object)')
  }
  for (const [name, check] of STORED_COOKIE) {
    if (!check((cookie as Record<string, unknown>)[name])) throw new Error(`the stored session's cookie.${name} is not valid`)
  }
  return value as SessionData
}

/** Runs `callback` with the outcome when given one; otherwise the promise is the answer. */
export function settle<T>(work: Promise<T>, callback: SessionCallback<T> | undefined): Promise<T> {
  if (callback === undefined) return work
  return work.then((value) => { callback(null, value); return value }, (error: unknown) => { callback(error); return undefined as T })
}
