/**
 * The small apps of the cache safety tests (issue 13 items 1–9), each built the way an app would
 * be: middleware ahead of the cache that shapes the response (i18n, login, sessions, trust proxy),
 * handlers that read what a key must cover, error handlers that end a half-sent body. Each counts
 * its handler runs, so a test tells a hit (no run) from a miss.
 */
import { pipeline, Readable } from 'node:stream'
import type { ErrorRequestHandler, Express } from 'express'
import type { CacheOptions, Kit } from '../../lib/index.js'
import { TEST_SECRET } from './session-app.js'

export type ExpressFactory = () => Express

export interface Counted {
  app: Express
  /** Handler runs per route name. */
  runs: Map<string, number>
  ran(route: string): number
}

function counted(app: Express): Counted {
  const runs = new Map<string, number>()
  return { app, runs, ran: (route) => runs.get(route) ?? 0 }
}

function count(target: Counted, route: string): void {
  target.runs.set(route, target.ran(route) + 1)
}

/**
 * Item 1. Upstream i18n middleware picks the language and sends `Vary: Accept-Language`; upstream
 * login middleware reads a `user` cookie and marks the page `Cache-Control: private`.
 */
export function homeApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  app.use((req, res, next) => {
    res.locals.lang = /^fr/.test(req.headers['accept-language'] ?? '') ? 'fr' : 'en'
    res.vary('Accept-Language')
    next()
  })
  app.use((req, res, next) => {
    const user = /(?:^|;\s*)user=(\w+)/.exec(req.headers.cookie ?? '')?.[1]
    if (user !== undefined) {
      res.locals.user = user
      res.setHeader('Cache-Control', 'private')
    }
    next()
  })
  app.get('/home', kit.cache({ ttl: 1, staleWhileRevalidate: 60 }), (_req, res) => {
    count(target, 'home')
    res.json({ greeting: res.locals.lang === 'fr' ? 'Bonjour' : 'Hello', user: res.locals.user ?? null })
  })
  return target
}

/** Item 2. kit.session() ahead of cached routes that read (and count in) the session. */
export function sessionCacheApp(kit: Kit, express: ExpressFactory, options: Partial<CacheOptions> = {}): Counted {
  const app = express()
  const target = counted(app)
  app.use(kit.session({ secret: TEST_SECRET }))
  app.post('/login', (req, res) => {
    req.session.user = typeof req.query.user === 'string' ? req.query.user : 'nobody'
    res.json({ user: req.session.user })
  })
  app.get('/whoami', kit.cache(options), (req, res) => {
    count(target, 'whoami')
    res.json({ user: req.session.user ?? null })
  })
  app.get('/visits', kit.cache(options), (req, res) => {
    count(target, 'visits')
    req.session.visits = (req.session.visits ?? 0) + 1
    res.json({ user: req.session.user ?? null, visits: req.session.visits })
  })
  app.get('/about', kit.cache({ ...options, shareAcrossSessions: true }), (_req, res) => {
    count(target, 'about')
    res.json({ about: 'the same page for everyone' })
  })
  return target
}

/**
 * Item 2, the store-time check: a session object some other middleware loads (empty here), and a
 * handler that signs the caller in through it and answers personally — without a Set-Cookie.
 */
export function welcomeApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  app.use((req, _res, next) => {
    Object.assign(req, { session: { cookie: {} } })
    next()
  })
  app.get('/welcome', kit.cache(), (req, res) => {
    count(target, 'welcome')
    const session = (req as unknown as { session: { user?: string } }).session
    const magic = req.headers['x-magic-link']
    if (typeof magic === 'string') session.user = magic
    res.json({ user: session.user ?? null })
  })
  return target
}

/** Item 3. Absolute links and a redirect built from the host, as Express reads it (`trust proxy` on). */
export function hostApp(kit: Kit, express: ExpressFactory, options: Partial<CacheOptions> = {}): Counted {
  const app = express()
  const target = counted(app)
  app.set('trust proxy', true)
  app.get('/links', kit.cache(options), (req, res) => {
    count(target, 'links')
    res.send(`<a href="${req.protocol}://${req.hostname}/login">log in</a>`)
  })
  app.get('/go', kit.cache({ ...options, statuses: [200, 302] }), (req, res) => {
    count(target, 'go')
    res.redirect(302, `${req.protocol}://${req.hostname}/login`)
  })
  return target
}

/** Item 3. No `trust proxy`, and a handler that reads X-Forwarded-Host itself (it should not). */
export function rawForwardedApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  app.get('/raw', kit.cache(), (req, res) => {
    count(target, 'raw')
    res.send(`https://${req.get('x-forwarded-host') ?? req.get('host') ?? ''}/login`)
  })
  return target
}

/** The JSON route most tests use: `/json/:id`, echoing the id and a version tests bump. */
export function jsonApp(kit: Kit, express: ExpressFactory, options: Partial<CacheOptions> = {}): Counted & { version: { value: number } } {
  const app = express()
  const target = { ...counted(app), version: { value: 1 } }
  app.get('/json/:id', kit.cache(options), (req, res) => {
    count(target, 'json')
    res.json({ id: req.params.id, version: target.version.value })
  })
  return target
}

/**
 * Item 5. Items behind one kit.cache() for every method (app.all): GET reads, POST/PUT/PATCH/DELETE
 * write; `?fail=1` answers 400; POST /items creates and answers 201 with a Location.
 */
export function itemsApp(kit: Kit, express: ExpressFactory): Counted & { versions: Map<string, number> } {
  const app = express()
  const target = { ...counted(app), versions: new Map<string, number>() }
  const cache = kit.cache()
  app.all('/items/:id', cache, (req, res) => {
    const id = String(req.params.id)
    if (req.method === 'GET') {
      count(target, `get:${id}`)
      res.json({ id, version: target.versions.get(id) ?? 1 })
      return
    }
    if (req.query.fail === '1') { res.status(400).json({ error: 'invalid' }); return }
    target.versions.set(id, (target.versions.get(id) ?? 1) + 1)
    if (req.method === 'DELETE') { res.sendStatus(204); return }
    if (typeof req.query.also === 'string') res.setHeader('Content-Location', req.query.also)
    res.json({ id, version: target.versions.get(id) })
  })
  app.post('/items', cache, (req, res) => {
    const id = typeof req.query.id === 'string' ? req.query.id : '0'
    target.versions.set(id, (target.versions.get(id) ?? 1) + 1)
    const origin = typeof req.query.origin === 'string' ? req.query.origin : ''
    res.status(201).location(`${origin}/items/${id}`).json({ id })
  })
  return target
}

/** Item 6. Handlers that say themselves how long (or whether) their response may be kept. */
export function freshnessApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  const own: Record<string, Record<string, string>> = {
    'max-age-0': { 'Cache-Control': 'public, max-age=0' },
    's-maxage-0': { 'Cache-Control': 's-maxage=0, max-age=60' },
    'must-revalidate': { 'Cache-Control': 'must-revalidate, max-age=0' },
    'no-cache': { 'Cache-Control': 'no-cache' },
    'expired': { Expires: 'Thu, 01 Jan 1970 00:00:00 GMT' },
    'max-age-1': { 'Cache-Control': 'max-age=1' },
    'plain': {},
  }
  app.get('/own/:kind', kit.cache({ ttl: 60 }), (req, res) => {
    const kind = String(req.params.kind)
    count(target, kind)
    res.set(own[kind] ?? {}).json({ kind, run: target.ran(kind) })
  })
  app.get('/origin/:kind', kit.cache({ ttl: 'origin' }), (req, res) => {
    const kind = String(req.params.kind)
    count(target, `origin:${kind}`)
    if (kind === 'swr') res.set('Cache-Control', 'max-age=2, stale-while-revalidate=30')
    res.json({ kind, run: target.ran(`origin:${kind}`) })
  })
  return target
}

/**
 * Item 7. Bodies cut short: the handler fails after the head went out, through next(err), a
 * rejected promise, or a failing stream; the app's error handler ends what was sent (with a plain
 * res.end(), or after setting a 500 status).
 */
export function truncatedApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  app.get('/report/:how', kit.cache(), (req, res, next) => {
    const how = String(req.params.how)
    count(target, how)
    res.setHeader('Content-Type', 'text/plain')
    res.write('part-1;')
    if (how === 'stream') {
      const source = new Readable({ read() { this.push('part-2;'); this.destroy(new Error('the disk went away')) } })
      pipeline(source, res, (error) => { if (error) next(error) })
      return
    }
    setImmediate(() => next(new Error('the database went away')))
  })
  app.get('/async-report', kit.cache(), async (_req, res) => {
    count(target, 'async')
    res.setHeader('Content-Type', 'text/plain')
    res.write('part-1;')
    await new Promise((resolve) => setImmediate(resolve))
    throw new Error('the database went away')
  })
  app.use(((_error, req, res, next) => {
    if (!res.headersSent) { next(_error); return }
    if (req.path.endsWith('/status')) res.status(500)
    res.end()
  }) as ErrorRequestHandler)
  return target
}

/** Item 8. A handler that uses the first `a` of the query; paths Express routes case-insensitively; two named caches with the same custom key. */
export function keysApp(kit: Kit, express: ExpressFactory): Counted {
  const app = express()
  const target = counted(app)
  app.get('/first', kit.cache(), (req, res) => {
    count(target, 'first')
    const a = req.query.a
    res.json({ a: Array.isArray(a) ? a[0] : a ?? null })
  })
  app.get('/docs/:page', kit.cache(), (req, res) => {
    count(target, 'docs')
    res.json({ page: req.params.page })
  })
  app.get('/users/:id', kit.cache({ name: 'users', key: (req) => String(req.params.id) }), (req, res) => {
    count(target, 'users')
    res.json({ kind: 'user', id: req.params.id })
  })
  app.get('/posts/:id', kit.cache({ name: 'posts', key: (req) => String(req.params.id) }), (req, res) => {
    count(target, 'posts')
    res.json({ kind: 'post', id: req.params.id })
  })
  return target
}

/** Item 9. A search page that is cache-busted, and a list that keys only the query parameter it reads. */
export function floodApp(kit: Kit, express: ExpressFactory, maxVariants?: number): Counted {
  const app = express()
  const target = counted(app)
  const filler = 'x'.repeat(2000)
  app.get('/search', kit.cache(maxVariants === undefined ? {} : { maxVariants }), (req, res) => {
    count(target, 'search')
    res.json({ query: req.query, filler })
  })
  app.get('/list', kit.cache({ query: ['page'] }), (req, res) => {
    count(target, 'list')
    res.json({ page: req.query.page ?? '1' })
  })
  return target
}

/** Item 10. A named cache, a route-level cache (labelled by its route) and an app-wide one. */
export function metricsApp(kit: Kit, express: ExpressFactory): Counted & { release(): void; arrived: number } {
  const app = express()
  let release: () => void = () => {}
  const hold = new Promise<void>((resolve) => { release = resolve })
  const target = { ...counted(app), release: () => release(), arrived: 0 }
  app.use('/slow', (_req, _res, next) => { target.arrived++; next() })
  app.get('/pages/:n', kit.cache({ ttl: 60, name: 'pages' }), (req, res) => {
    count(target, 'pages')
    res.json({ page: req.params.n })
  })
  app.get('/fresh/:n', kit.cache({ ttl: 1, staleWhileRevalidate: 60 }), (req, res) => {
    count(target, 'fresh')
    res.json({ n: req.params.n, run: target.ran('fresh') })
  })
  app.get('/slow', kit.cache({ name: 'slow' }), (_req, res) => {
    count(target, 'slow')
    void hold.then(() => res.json({ slow: true }))
  })
  app.use('/everything', kit.cache(), (_req, res) => { res.json({ everything: true }) })
  return target
}
