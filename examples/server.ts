/**
 * A small "scan results API" using every feature of express-redis-kit, with helmet.
 * Copy it: replace '../lib/index.js' with 'express-redis-kit'.
 *
 *   npm start                      # serves on :8000, from Redis if REDIS_URL answers, else from memory
 *   curl http://localhost:8000/health/redis
 *   curl -i -X POST http://localhost:8000/api/scans/example.com/jobs    # 202, Location: /api/jobs/scan/example.com
 *   open http://localhost:8000/admin/queues                             # the queue dashboard, after /login
 */
import type { Server } from 'node:http'
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { ExpressAdapter } from '@bull-board/express'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import helmet from 'helmet'
import { createKit, KitError, type JobQueue, type Kit, type KitOptions } from '../lib/index.js'

declare module 'express-session' {
  interface SessionData {
    user?: string
  }
}

const TARGET = /^[a-z0-9][a-z0-9.-]{0,252}$/i
const USERNAME = /^[\w.@-]{1,64}$/

export interface ExampleOptions {
  /** Options for createKit(); the environment fills in the rest. */
  kit?: Partial<KitOptions>
  /** Requests per minute under /api. Defaults to `RATE_LIMIT`, else 100. */
  rateLimit?: number
  /** How long a simulated scan takes. Defaults to 100 ms. */
  scanMs?: number
  /** How long a background scan job takes (it reports progress four times). Defaults to 2000 ms. */
  scanJobMs?: number
}

export interface ScanJob {
  target: string
}

export interface ScanReport {
  target: string
  openPorts: number[]
  findings: string[]
  scannedAt: string
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** 503 + Retry-After when the queue cannot take or read jobs; 400 for an id BullMQ refuses; the rest to express. */
function queueErrors(error: unknown, res: Response, next: NextFunction): void {
  if (error instanceof KitError && error.code === 'ERR_KIT_QUEUE_UNAVAILABLE') {
    res.status(503).set('Retry-After', '5').json({ error: 'the job queue is unavailable, try again shortly' })
  } else if (error instanceof KitError && error.code === 'ERR_KIT_INVALID_ARGUMENT') {
    res.status(400).json({ error: error.message })
  } else {
    next(error)
  }
}

/** The queue dashboard (@bull-board) at /admin/queues, for logged-in users only. */
function mountDashboard(app: Express, scans: JobQueue<ScanJob, ScanReport>): void {
  const requireLogin = (req: Request, res: Response, next: NextFunction): void => {
    if (req.session.user) return next()
    if (req.accepts(['json', 'html']) === 'html') res.redirect(303, '/login')
    else res.status(401).json({ error: 'log in first (POST /login)' })
  }
  const board = new ExpressAdapter()
  board.setBasePath('/admin/queues')
  if (scans.bullmq) {
    createBullBoard({ queues: [new BullMQAdapter(scans.bullmq)], serverAdapter: board, options: { uiConfig: { boardTitle: 'Scan jobs' } } })
    app.use('/admin/queues', requireLogin, board.getRouter())
  } else {
    app.use('/admin/queues', requireLogin, (_req: Request, res: Response) => {
      res.status(503).json({ error: 'the dashboard needs Redis (ENABLE_REDIS=false runs jobs in memory)' })
    })
  }
}

const LOGIN_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in</title></head>
<body><form method="post" action="/login"><label>User <input name="username" autocomplete="username" required></label>
<button type="submit">Log in</button></form></body></html>`

export function createApp(options: ExampleOptions = {}): { app: Express; kit: Kit } {
  const env = options.kit?.env ?? process.env
  if (env.NODE_ENV === 'production' && !env.SESSION_SECRET) {
    throw new Error('SESSION_SECRET is not set: in production set it to a long random string (e.g. `openssl rand -hex 32`).')
  }
  const kit = createKit({
    ...options.kit,
    // A demo must start without configuration; a real app sets SESSION_SECRET.
    env: { SESSION_SECRET: 'example-only-secret-change-me-please-0123456789', ...env },
  })
  const perMinute = options.rateLimit ?? Number(env.RATE_LIMIT ?? 100)
  if (!Number.isSafeInteger(perMinute) || perMinute < 1) {
    throw new Error(`RATE_LIMIT must be a whole number of requests per minute, got ${String(env.RATE_LIMIT)}`)
  }
  const scanMs = options.scanMs ?? 100
  const scanJobMs = options.scanJobMs ?? 2000
  let scansComputed = 0

  // Background scans: one job per target at a time (the target is the job id), retried with backoff.
  // While Redis is down, add() answers at once with state 'held' and the job is added when it is back.
  const scans = kit.queue<ScanJob, ScanReport>('scan', { attempts: 3, backoff: { type: 'exponential', delay: 1000 } })
  kit.worker<ScanJob, ScanReport>('scan', async function runScan(job) {
    for (let step = 1; step <= 4; step++) {
      await sleep(scanJobMs / 4) // the expensive part
      await job.updateProgress(step * 25)
    }
    return { target: job.data.target, openPorts: [22, 80, 443], findings: [], scannedAt: new Date().toISOString() }
  }, { concurrency: 4 })

  const app = express()
  app.disable('x-powered-by')
  app.use(helmet())
  app.use(express.json({ limit: '10kb' }))
  app.use(express.urlencoded({ extended: false, limit: '10kb' }))
  app.use('/health', kit.healthRouter())
  // Prometheus scrapes the kit's metrics here (prom-client); in production, an internal port or auth.
  app.use('/metrics', kit.metricsRouter())
  app.use(kit.session())

  app.get('/login', (_req: Request, res: Response) => {
    res.type('html').send(LOGIN_PAGE)
  })

  app.post('/login', kit.rateLimit({ name: 'login', windowMs: 15 * 60_000, limit: 5 }), async (req: Request, res: Response) => {
    const username: unknown = req.body?.username
    if (typeof username !== 'string' || !USERNAME.test(username)) {
      res.status(400).json({ error: 'username must be 1-64 letters, digits or . _ @ -' })
      return
    }
    // A new session id, saved before the answer: a cookie planted before the login (session
    // fixation) never becomes the user's session.
    await kit.login(req, { user: username })
    // The login form goes on to the dashboard; API clients get JSON.
    if (req.is('application/x-www-form-urlencoded')) res.redirect(303, '/admin/queues')
    else res.json({ user: username })
  })

  app.get('/me', (req: Request, res: Response) => {
    if (!req.session.user) {
      res.status(401).json({ error: 'not logged in' })
      return
    }
    res.json({ user: req.session.user })
  })

  app.post('/logout', async (req: Request, res: Response) => {
    // Destroyed for good: a request still running with this session cannot save it back.
    await kit.logout(req, res)
    res.status(204).end()
  })

  app.use('/api', kit.rateLimit({ name: 'api', windowMs: 60_000, limit: perMinute }))

  app.get('/api/scans/:target',
    (req: Request, res: Response, next: NextFunction) => {
      if (!TARGET.test(String(req.params.target))) res.status(400).json({ error: 'target must be a host name' })
      else next()
    },
    // A scan report is the same for every user, so logged-in users share it too (by default the
    // cache skips requests whose session holds data, so one user's page never reaches another).
    kit.cache({ ttl: 300, shareAcrossSessions: true, tags: (req) => [`scan:${String(req.params.target).toLowerCase()}`] }),
    async (req: Request, res: Response) => {
      const target = String(req.params.target).toLowerCase()
      await new Promise((resolve) => setTimeout(resolve, scanMs)) // the expensive part
      scansComputed++
      res.json({ target, computedAt: new Date().toISOString(), scansComputed, openPorts: [22, 80, 443], findings: [] })
    })

  app.delete('/api/scans/:target', async (req: Request, res: Response) => {
    await kit.invalidate({ tag: `scan:${String(req.params.target).toLowerCase()}` })
    res.status(204).end()
  })

  app.get('/api/visits', async (_req: Request, res: Response) => {
    res.json({ count: await kit.client.increment('visitor_count') })
  })

  app.post('/api/scans/:target/jobs', async (req: Request, res: Response, next: NextFunction) => {
    const target = String(req.params.target).toLowerCase()
    if (!TARGET.test(target)) {
      res.status(400).json({ error: 'target must be a host name' })
      return
    }
    try {
      const job = await scans.add('scan', { target }, { jobId: target })
      res.status(202).location(`/api/jobs/scan/${encodeURIComponent(job.id)}`).json(job)
    } catch (error) {
      queueErrors(error, res, next)
    }
  })

  app.get('/api/jobs/scan/:id', async (req: Request, res: Response, next: NextFunction) => {
    try {
      const job = await scans.getJob(String(req.params.id))
      if (job) res.json(job)
      else res.status(404).json({ error: 'no such job' })
    } catch (error) {
      queueErrors(error, res, next)
    }
  })

  mountDashboard(app, scans)

  return { app, kit }
}

/** Stops accepting connections, lets in-flight requests finish, then closes the kit. */
export function shutdownOnSignals(server: Server, kit: Kit, log: (line: string) => void = console.log): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log(`${signal}: finishing in-flight requests`)
    server.close(() => {
      void kit.close().then(() => log('stopped'))
    })
    server.closeIdleConnections()
    // Keep-alive clients that never go idle must not hold the process forever.
    setTimeout(() => server.closeAllConnections(), 10_000).unref()
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

if (require.main === module) {
  const { app, kit } = createApp()
  const port = Number(process.env.PORT ?? 8000)
  // Loopback unless told otherwise (HOST=0.0.0.0 in a container).
  const host = process.env.HOST ?? '127.0.0.1'
  const server = app.listen(port, host, () => {
    console.log(`scan API on http://${host}:${port} (try /health, /health/redis, /api/scans/example.com)`)
  })
  // The kit itself says once whether it serves from Redis or from memory.
  shutdownOnSignals(server, kit)
}
