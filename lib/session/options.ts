/**
 * `kit.session(options)`: the express-session options with secure defaults, plus the store's own
 * options, parsed once at start-up. Everything wrong throws here with the option's name and the fix.
 */
import type { CookieOptions, SessionData, SessionOptions as ExpressSessionOptions } from 'express-session'
import { Options } from '../core/options.js'
import { parseCookie } from './cookie.js'

/** How session data is written to Redis and memory. `JSON` (the connect-redis default) is used when omitted. */
export interface SessionSerializer {
  parse(text: string): SessionData
  stringify(session: SessionData): string
}

/** The failover store's own options (the rest are express-session's and pass through). */
export interface SessionStoreOptions {
  /**
   * How long a session lives in Redis (and in the memory twin) after its last use, when the cookie
   * has no `maxAge`. With `cookie.maxAge` the cookie's expiry is used instead, as connect-redis does.
   * Defaults to `86400000` (24 h).
   */
  ttlMs: number
  /**
   * express-session touches the store on every request. The Redis EXPIRE is skipped while the
   * expiry this instance last wrote is within `touchAfterMs` of the one the touch would write, so
   * an active session is refreshed in Redis at most once per `touchAfterMs` and may expire up to
   * `touchAfterMs` earlier than the last request plus the TTL. `0` refreshes on every request.
   * Defaults to one tenth of the session's TTL (2.4 h for the 24 h default); at most half of it.
   */
  touchAfterMs: number | undefined
  /** Parses and writes session data. Defaults to `JSON`, as connect-redis. */
  serializer: SessionSerializer
}

/** `kit.session()` options: every express-session option, `secret` optional (falls back to `SESSION_SECRET`). */
export type SessionOptions = Omit<ExpressSessionOptions, 'secret' | 'store' | 'cookie' | 'name' | 'resave' | 'saveUninitialized'> & {
  /**
   * Signs the session cookie; an array rotates secrets (the first signs, all verify).
   * Defaults to the `SESSION_SECRET` environment variable; without either, `kit.session()` throws.
   */
  secret: string | string[]
  /**
   * The session cookie's attributes, merged over the secure defaults.
   * Defaults to `{ path: '/', httpOnly: true, sameSite: 'lax', secure: 'auto' in production else false }`.
   */
  cookie: CookieOptions
  /** The cookie's name. Defaults to `'sid'`. */
  name: string
  /** Write an unmodified session back on every request. Defaults to `false`. */
  resave: boolean
  /** Store (and set a cookie for) a session nothing was put in. Defaults to `false`. */
  saveUninitialized: boolean
} & SessionStoreOptions

/** What the factory hands to express-session and to the store. */
export interface SessionConfig {
  express: Omit<ExpressSessionOptions, 'secret' | 'cookie'> & { secret: string | string[]; name: string; cookie: CookieOptions }
  store: SessionStoreOptions
  production: boolean
}

const EXPRESS_OPTIONS = ['secret', 'genid', 'name', 'cookie', 'rolling', 'resave', 'proxy', 'saveUninitialized', 'unset'] as const
const STORE_OPTIONS = ['ttlMs', 'touchAfterMs', 'serializer'] as const
const KNOWN: readonly string[] = [...EXPRESS_OPTIONS, ...STORE_OPTIONS]
const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000
const options = new Options('session')

function parseSecret(value: unknown, env: Readonly<Record<string, string | undefined>>): string | string[] {
  const fromEnv = env.SESSION_SECRET
  const secret = value ?? (fromEnv !== undefined && fromEnv.trim() !== '' ? fromEnv : undefined)
  if (secret === undefined) {
    options.fail('secret', 'is missing',
      'Pass kit.session({ secret }) or set the SESSION_SECRET environment variable to a long random string '
      + "(e.g. the output of `node -e \"console.log(require('crypto').randomBytes(32).toString('hex'))\"`).")
  }
  const list = Array.isArray(secret) ? secret : [secret]
  if (list.length === 0 || list.some((s) => typeof s !== 'string' || s === '')) {
    options.fail('secret', 'must be a non-empty string or a non-empty array of non-empty strings',
      'Pass a long random string, or [newSecret, oldSecret] to rotate.')
  }
  return secret as string | string[]
}

/** The store's own options, validated; used by `kit.session()` and `kit.sessionStore()`. */
export function parseStoreOptions(given: Readonly<Partial<SessionStoreOptions>> | Readonly<Record<string, unknown>>): SessionStoreOptions {
  const store = given as Readonly<Record<string, unknown>>
  const serializer = store.serializer as SessionSerializer | undefined
  if (serializer !== undefined && (typeof serializer?.parse !== 'function' || typeof serializer.stringify !== 'function')) {
    options.fail('serializer', 'needs parse() and stringify()', 'Pass JSON or an object with both methods.')
  }
  return {
    ttlMs: options.milliseconds(store.ttlMs, 'ttlMs', DEFAULT_TTL_MS),
    touchAfterMs: store.touchAfterMs === undefined ? undefined : options.milliseconds(store.touchAfterMs, 'touchAfterMs', 0, true),
    serializer: serializer ?? JSON,
  }
}

/**
 * A touch window of half the session's lifetime or more would let an active session expire in
 * Redis between refreshes; the store also caps it at half of each session's TTL at run time.
 */
function checkTouchWindow(store: SessionStoreOptions, cookie: CookieOptions): void {
  const lifetime = typeof cookie.maxAge === 'number' ? cookie.maxAge : store.ttlMs
  const from = typeof cookie.maxAge === 'number' ? 'cookie.maxAge' : 'ttlMs'
  if (store.touchAfterMs !== undefined && store.touchAfterMs > lifetime / 2) {
    options.fail('touchAfterMs', `is ${store.touchAfterMs} ms, more than half the session lifetime (${from} = ${lifetime} ms), so active sessions could expire`,
      `Use at most ${Math.floor(lifetime / 2)} ms, or leave it out (default: one tenth of the lifetime).`)
  }
}

export function parseSessionOptions(
  raw: Readonly<Partial<SessionOptions>> | undefined,
  env: Readonly<Record<string, string | undefined>>,
): SessionConfig {
  const given = options.object<Record<string, unknown>>(raw, 'kit.session(options)', 'kit.session({ secret }) or kit.session()')
  if (given.store !== undefined) {
    options.fail('store', 'cannot be set', 'kit.session() brings its own failover store; to use another store, call express-session directly.')
  }
  const defined = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined))
  options.known(defined, KNOWN)
  for (const name of ['rolling', 'resave', 'proxy', 'saveUninitialized']) options.boolean(given[name], name, false)
  options.string(given.name, 'name', 'sid', "Use a non-empty string, e.g. 'sid'.", /./)
  options.fn(given.genid, 'genid', '(req) => crypto.randomUUID()')
  options.oneOf(given.unset, 'unset', ['destroy', 'keep'], 'keep', "Use 'destroy' or 'keep'.")
  const store = parseStoreOptions(given)
  // An `env` given to createKit (e.g. for SESSION_SECRET) rarely repeats NODE_ENV: a production
  // process must not lose its Secure cookie and its warning because of it.
  const production = (env.NODE_ENV ?? process.env.NODE_ENV) === 'production'
  const cookie = parseCookie(given.cookie, production)
  checkTouchWindow(store, cookie)
  const passThrough: Record<string, unknown> = {}
  for (const name of EXPRESS_OPTIONS) if (given[name] !== undefined) passThrough[name] = given[name]
  return {
    express: {
      ...passThrough,
      secret: parseSecret(given.secret, env),
      name: (given.name as string | undefined) ?? 'sid',
      resave: (given.resave as boolean | undefined) ?? false,
      saveUninitialized: (given.saveUninitialized as boolean | undefined) ?? false,
      cookie,
    },
    store,
    production,
  }
}
