/**
 * The session cookie's options, checked at start-up: express-session accepts anything here and
 * fails later, per request (a `maxAge` of '1h' leaves every login without a response).
 */
import type { CookieOptions } from 'express-session'
import { Options, show } from '../core/options.js'

type Check = (value: unknown) => boolean
const isBoolean: Check = (value) => typeof value === 'boolean'
const isText: Check = (value) => typeof value === 'string' && value !== ''

/** Each option express-session's cookie knows, with what it accepts and how to say it. */
const COOKIE_OPTIONS: Readonly<Record<string, readonly [Check, string]>> = {
  maxAge: [(v) => v === null || (typeof v === 'number' && Number.isFinite(v) && v > 0), 'a positive number of milliseconds (e.g. 86400000), or null for a browser-session cookie'],
  expires: [(v) => v === null || (v instanceof Date && !Number.isNaN(v.getTime())), 'a valid Date (prefer maxAge)'],
  httpOnly: [isBoolean, 'true or false'],
  secure: [(v) => isBoolean(v) || v === 'auto', "true, false or 'auto'"],
  sameSite: [(v) => isBoolean(v) || v === 'lax' || v === 'strict' || v === 'none', "'lax', 'strict', 'none', true or false"],
  path: [isText, "a path such as '/'"],
  domain: [isText, "a domain such as 'example.com'"],
  priority: [(v) => v === 'low' || v === 'medium' || v === 'high', "'low', 'medium' or 'high'"],
  partitioned: [isBoolean, 'true or false'],
  signed: [isBoolean, 'true or false'],
  encode: [(v) => typeof v === 'function', 'a function'],
}

const options = new Options('session')

/** The cookie options merged over the secure defaults; anything express-session would choke on throws. */
export function parseCookie(value: unknown, production: boolean): CookieOptions {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    options.fail('cookie', typeof value === 'function' ? 'is a function, which kit.session() does not support' : 'must be an object',
      'Pass cookie options such as { maxAge: 3600000, domain: "example.com" }.')
  }
  const given = Object.fromEntries(Object.entries((value ?? {}) as Readonly<Record<string, unknown>>).filter(([, option]) => option !== undefined))
  options.known(given, Object.keys(COOKIE_OPTIONS), {}, 'cookie.', 'cookie option')
  for (const [name, option] of Object.entries(given)) {
    const rule = COOKIE_OPTIONS[name] as readonly [Check, string]
    if (!rule[0](option)) options.fail(`cookie.${name}`, `is ${show(option)}`, `Use ${rule[1]}.`)
  }
  // `secure: 'auto'` marks the cookie Secure exactly when the request is HTTPS; behind a TLS
  // proxy that needs `app.set('trust proxy', …)`, which the docs explain.
  return { path: '/', httpOnly: true, sameSite: 'lax', secure: production ? 'auto' : false, ...(value as CookieOptions | undefined) }
}
