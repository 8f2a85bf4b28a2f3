/**
 * `kit.login(req, data)` and `kit.logout(req, res)`: the two moments a session's privileges change,
 * done the safe way. A login gets a new session id (the one the browser brought, possibly planted
 * by an attacker, is destroyed: session fixation), stores `data` and saves before resolving; a
 * logout destroys the session (its tombstone keeps late saves out) and clears the cookie.
 */
import type { Request, Response } from 'express'
import type { CookieOptions, SessionData } from 'express-session'
import { invalidArgument } from '../core/errors.js'

/** What `kit.login()` stores in the new session: your `SessionData` fields, never `cookie`. */
export type LoginData = Readonly<Omit<Partial<SessionData>, 'cookie'>>

/** The cookie each kit.session() sets, by its store, so kit.logout() can clear it. */
const cookies = new WeakMap<object, { name: string; options: CookieOptions }>()

export function rememberCookie(store: object, name: string, options: CookieOptions): void {
  cookies.set(store, { name, options })
}

/** Names express-session gives the session object itself. */
const RESERVED = new Set(['cookie', 'id', 'req', 'regenerate', 'destroy', 'reload', 'save', 'touch', 'resetMaxAge'])

function sessionOf(req: Request, method: string): NonNullable<Request['session']> {
  const session = (req as Partial<Request> | undefined)?.session
  if (session === undefined || session === null || typeof session.regenerate !== 'function') {
    throw invalidArgument(method, 'the request has no session; mount kit.session() before this route (app.use(kit.session()))')
  }
  return session
}

function callback(run: (done: (error?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => { run((error) => (error ? reject(error) : resolve())) })
}

export async function login(req: Request, data: LoginData): Promise<void> {
  const method = 'kit.login(req, data)'
  const session = sessionOf(req, method)
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw invalidArgument(method, 'data must be an object of session fields, e.g. { user: \'alice\' }')
  }
  for (const name of Object.keys(data)) {
    if (RESERVED.has(name)) throw invalidArgument(method, `data cannot set \`${name}\`, which belongs to express-session`)
  }
  await callback((done) => session.regenerate(done))
  Object.assign(req.session, data)
  await callback((done) => req.session.save(done))
}

export async function logout(req: Request, res: Response): Promise<void> {
  const session = sessionOf(req, 'kit.logout(req, res)')
  const store = req.sessionStore
  await callback((done) => session.destroy(done))
  const cookie = cookies.get(store)
  if (cookie === undefined || res.headersSent) return
  // The browser drops a cookie only when the name, path, domain (and partitioning) match.
  const { path, domain, httpOnly, sameSite, secure, partitioned } = cookie.options
  const options = Object.fromEntries(Object.entries({
    path, domain, httpOnly, sameSite, partitioned, secure: secure === 'auto' ? req.secure : secure,
  }).filter(([, value]) => value !== undefined))
  res.clearCookie(cookie.name, options)
}
