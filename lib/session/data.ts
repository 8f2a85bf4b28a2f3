/** What a stored session is, and how express-session's callbacks are answered. */
import type { SessionData } from 'express-session'

/** Node-style callback, as express-session passes them. */
export type SessionCallback<T> = (error: unknown, value?: T) => void

/** A stored session as returned by `all()`: its data plus its id. */
export type StoredSession = SessionData & { id: string }

/** express-session loads only an object with a `cookie` object; anything else would become a 500 there. */
export function checkSession(value: unknown): SessionData {
  const cookie = (value as { cookie?: unknown } | null)?.cookie
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof cookie !== 'object' || cookie === null) {
    throw new Error('the stored value is not a session (an object with a cookie object)')
  }
  return value as SessionData
}

/** Runs `callback` with the outcome when given one; otherwise the promise is the answer. */
export function settle<T>(work: Promise<T>, callback: SessionCallback<T> | undefined): Promise<T> {
  if (callback === undefined) return work
  return work.then((value) => { callback(null, value); return value }, (error: unknown) => { callback(error); return undefined as T })
}
