/**
 * The example's routes built from the raw peer stack a user would otherwise pick, on ONE ioredis
 * client with ioredis' default settings (offline queue on, 20 retries per request, no command
 * timeout): apicache, express-session + connect-redis 8, express-rate-limit + rate-limit-redis,
 * helmet. It is the "before" picture for `bench/chaos.ts`, not a recommended setup.
 *
 *   PORT=8001 REDIS_URL=redis://127.0.0.1:6380 RATE_LIMIT=1000000 node --import tsx bench/peer-server.ts
 *
 * Only two things are added so the process survives an outage (a crashed server would measure
 * nothing): an 'error' listener on the client, and an 'unhandledRejection' handler, because
 * apicache writes to Redis fire-and-forget (`redis.hset(…)` without a callback), so a failed
 * write is an unhandled promise rejection that ends a default Node process. Both log a line
 * (`peer: …`) that the orchestrator counts. Everything else is left as the peers behave.
 */
import express, { type NextFunction, type Request, type Response } from 'express'
import session from 'express-session'
import helmet from 'helmet'
import { rateLimit } from 'express-rate-limit'
import { RedisStore as RateLimitRedisStore, type RedisReply } from 'rate-limit-redis'
import { RedisStore as SessionRedisStore } from 'connect-redis'
import { Redis } from 'ioredis'

declare module 'express-session' {
  interface SessionData {
    user?: string
  }
}

interface Apicache {
  options(options: object): Apicache
  middleware(duration: string): express.RequestHandler
  clear(target?: string): unknown
}

const TARGET = /^[a-z0-9][a-z0-9.-]{0,252}$/i
const USERNAME = /^[\w.@-]{1,64}$/

const port = Number(process.env.PORT ?? 8001)
const perMinute = Number(process.env.RATE_LIMIT ?? 100)
const scanMs = Number(process.env.SCAN_MS ?? 100)
const secret = process.env.SESSION_SECRET ?? 'example-only-secret-change-me-please-0123456789'

// Defaults on purpose: this is what `new Redis(url)` gives a user.
const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
let lastError = ''
client.on('error', (error: Error) => {
  // ioredis emits one error per failed reconnect attempt; log each distinct message once.
  if (error.message !== lastError) console.error(`peer: redis error: ${error.message}`)
  lastError = error.message
})
client.on('ready', () => {
  lastError = ''
  console.log(`peer: redis ready at ${process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'}`)
})
process.on('unhandledRejection', (reason) => {
  console.error(`peer: unhandledRejection: ${reason instanceof Error ? reason.message : String(reason)}`)
})

// apicache 1.6.3 was written for redis@3 and only reads/writes Redis while `redisClient.connected`
// is true; ioredis has `status` instead. This getter is the one shim; without it apicache would
// silently cache in process memory only.
Object.defineProperty(client, 'connected', { get: () => client.status === 'ready' })
 
const apicache = (require('apicache') as Apicache).options({ redisClient: client })

const sendCommand = (command: string, ...args: string[]): Promise<RedisReply> =>
  client.call(command, ...args) as Promise<RedisReply>

const app = express()
app.disable('x-powered-by')
app.use(helmet())
app.use(express.json({ limit: '10kb' }))

app.get('/health/redis', async (_req: Request, res: Response) => {
  res.set('Cache-Control', 'no-store')
  const started = performance.now()
  try {
    await client.ping()
    res.json({ status: 'healthy', latency_ms: Math.round((performance.now() - started) * 100) / 100 })
  } catch (error) {
    res.status(503).json({ status: 'unhealthy', error: error instanceof Error ? error.message : String(error) })
  }
})

app.use(session({
  store: new SessionRedisStore({ client, prefix: 'session:' }),
  secret,
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'lax', secure: false, maxAge: 86_400_000 },
}))

app.post('/login',
  rateLimit({
    windowMs: 15 * 60_000, limit: 5, standardHeaders: 'draft-8', legacyHeaders: false,
    store: new RateLimitRedisStore({ sendCommand, prefix: 'rl:login:' }),
  }),
  (req: Request, res: Response, next: NextFunction) => {
    const username: unknown = req.body?.username
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      res.status(400).json({ error: 'username must be 1-64 letters, digits or . _ @ -' })
      return
    }
    req.session.regenerate((error) => {
      if (error) return next(error)
      req.session.user = username
      res.json({ user: username })
    })
  })

app.get('/me', (req: Request, res: Response) => {
  if (!req.session.user) {
    res.status(401).json({ error: 'not logged in' })
    return
  }
  res.json({ user: req.session.user })
})

app.post('/logout', (req: Request, res: Response, next: NextFunction) => {
  req.session.destroy((error) => (error ? next(error) : res.status(204).end()))
})

app.use('/api', rateLimit({
  windowMs: 60_000, limit: perMinute, standardHeaders: 'draft-8', legacyHeaders: false,
  store: new RateLimitRedisStore({ sendCommand, prefix: 'rl:api:' }),
}))

app.get('/api/scans/:target',
  (req: Request, res: Response, next: NextFunction) => {
    if (!TARGET.test(String(req.params.target))) {
      res.status(400).json({ error: 'target must be a host name' })
      return
    }
    // apicache's way to tag: the group of the entry this request creates.
    (req as Request & { apicacheGroup?: string }).apicacheGroup = `scan:${String(req.params.target).toLowerCase()}`
    next()
  },
  apicache.middleware('5 minutes'),
  async (req: Request, res: Response) => {
    const target = String(req.params.target).toLowerCase()
    await new Promise((resolve) => setTimeout(resolve, scanMs))
    scansComputed++
    res.json({ target, computedAt: new Date().toISOString(), scansComputed, openPorts: [22, 80, 443], findings: [] })
  })
let scansComputed = 0

app.delete('/api/scans/:target', (req: Request, res: Response) => {
  apicache.clear(`scan:${String(req.params.target).toLowerCase()}`)
  res.status(204).end()
})

app.get('/api/visits', async (_req: Request, res: Response, next: NextFunction) => {
  try {
    res.json({ count: await client.incr('visitor_count') })
  } catch (error) {
    next(error)
  }
})

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`peer scan API on http://127.0.0.1:${port}`)
})

let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  server.close(() => { client.disconnect(); process.exit(0) })
  server.closeIdleConnections()
  setTimeout(() => { server.closeAllConnections(); client.disconnect(); process.exit(0) }, 3000).unref()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
