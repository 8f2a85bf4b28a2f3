/**
 * `kit.session(options)`: express-session with secure defaults over the failover store, so users
 * stay logged in through a Redis outage and their logins and logouts reach Redis afterwards.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import session from 'express-session'
import type { FeatureContext } from '../core/context.js'
import { markSessionInUse } from '../core/request-marks.js'
import { rememberCookie } from './login.js'
import { parseSessionOptions, type SessionOptions } from './options.js'
import { FailoverSessionStore } from './store.js'

export { FailoverSessionStore, type SessionCallback, type StoredSession } from './store.js'
export { login, logout, type LoginData } from './login.js'
export type { SessionOptions, SessionSerializer, SessionStoreOptions } from './options.js'

/** The express-session middleware, with the store it uses (for `all()`, `ids()`, `clear()` …). */
export type SessionMiddleware = RequestHandler & { store: FailoverSessionStore }

const SHORT_SECRET = 32

/** Whether a loaded session holds anything besides its cookie (a user, a cart …). */
function holdsData(sess: object | undefined): boolean {
  // for…in stops at the first name; express-session's own methods and `id` are not enumerable.
  for (const name in sess) if (name !== 'cookie') return true
  return false
}

export function createSessionMiddleware(ctx: FeatureContext, options?: Readonly<Partial<SessionOptions>>): SessionMiddleware {
  const config = parseSessionOptions(options, ctx.settings.env)
  const secrets = Array.isArray(config.express.secret) ? config.express.secret : [config.express.secret]
  if (secrets.some((secret) => secret.length < SHORT_SECRET)) {
    ctx.log.warn('ERR_KIT_SESSION_SECRET_SHORT', `a session secret is shorter than ${SHORT_SECRET} characters; `
      + 'use a long random string so session cookies cannot be forged.')
  }
  const store = new FailoverSessionStore(ctx, config.store)
  const handler = session({ ...config.express, store })
  store.followReplacedSessions() // after session(): it installs the store's generate()
  rememberCookie(store, config.express.name, config.express.cookie)

  // In production the cookie is Secure only on HTTPS requests; behind a TLS proxy Express sees
  // plain HTTP unless `trust proxy` is set, and the cookie would go out without Secure.
  let checked = !config.production || config.express.cookie.secure !== 'auto'
  const kitSession = function kitSession(req: Request, res: Response, next: NextFunction): void {
    if (!checked) {
      checked = true
      if (!req.secure) {
        ctx.log.warn('ERR_KIT_SESSION_INSECURE', 'a request reached kit.session() over plain HTTP in production, '
          + 'so the session cookie is sent without Secure. Behind a TLS proxy, call app.set(\'trust proxy\', 1). Logged once.')
      }
    }
    handler(req, res, function sessionLoaded(error?: unknown) {
      // kit.cache() neither serves nor stores a shared entry for a request whose session holds data.
      if (error === undefined && holdsData(req.session)) markSessionInUse(req)
      next(error)
    })
  }
  return Object.assign(kitSession, { store })
}
