/**
 * The example's routes built from the raw peer stack a user would otherwise pick, on ONE ioredis
 * client with ioredis' default settings (offline queue on, 20 retries per request, no command
 * timeout): apicache, express-session + connect-redis 8, express-rate-limit + rate-limit-redis,
 * helmet, and raw BullMQ for the background scans (its Queue on that client, its Worker on a
 * connection of its own with `maxRetriesPerRequest: null`, as BullMQ's docs set it up; BullMQ's
 * default options otherwise). It is the "before" picture for `bench/chaos.ts`, not a recommended setup.
 *
 *   PORT=8001 REDIS_URL=redis://127.0.0.1:6380 RATE_LIMIT=1000000 node --import tsx bench/peer-server.ts
 *
 * On a Redis Cluster (PEER_CLUSTER_NODES=host:port,…) or behind Sentinel (PEER_SENTINELS=host:port,…
 * and PEER_SENTINEL_NAME) instead of REDIS_URL, each library is set up as its docs say for that
 * topology, ioredis' defaults otherwise: `new Cluster(nodes)` / `new Redis({ sentinels, name })`;
 * on a Cluster rate-limit-redis gets `sendCommandCluster` and the BullMQ queue a hash-tagged name,
 * `{scan}`, so its keys share one slot.
 *
 * Only two things are added so the process survives an outage (a crashed server would measure
 * nothing): an 'error' listener on the client, and an 'unhandledRejection' handler, because
 * apicache writes to Redis fire-and-forget (`redis.hset(…)` without a callback), so a failed
 * write is an unhandled promise rejection that ends a default Node process. Both log a line
 * (`peer: …`) that the orchestrator counts; so do the 'error' listeners BullMQ's docs ask for on
 * its Queue and Worker (an EventEmitter 'error' without one ends the process). Everything else is
 * left as the peers behave.
 */
import express, { type NextFunction, type Request, type Response } from 'express'
import session from 'express-session'
import helmet from 'helmet'
import { rateLimit } from 'express-rate-limit'
import { RedisStore as RateLimitRedisStore, type RedisReply } from 'rate-limit-redis'
import { RedisStore as SessionRedisStore } from 'connect-redis'
import { Queue, Worker, type Job } from 'bullmq'
import { Cluster, Redis, type RedisOptions } from 'ioredis'

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
/** How long a background scan job takes (four steps, each reporting progress), as the example's `scanJobMs`. */
const scanJobMs = Number(process.env.SCAN_JOB_MS ?? 2000)
const secret = process.env.SESSION_SECRET ?? 'example-only-secret-change-me-please-0123456789'

/** `host:port,host:port` as ioredis takes it; undefined when the variable is not set. */
const addresses = (list: string | undefined): Array<{ host: string; port: number }> | undefined => list?.split(',').map((address) => {
  const colon = address.lastIndexOf(':')
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) }
})
const clusterNodes = addresses(process.env.PEER_CLUSTER_NODES)
const sentinels = addresses(process.env.PEER_SENTINELS)
const sentinelName = process.env.PEER_SENTINEL_NAME ?? 'mymaster'
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const topology = clusterNodes ? `cluster ${process.env.PEER_CLUSTER_NODES}` : sentinels ? `sentinel master '${sentinelName}' via ${process.env.PEER_SENTINELS}` : redisUrl
// Defaults on purpose: this is what `new Redis(url)`, `new Cluster(nodes)` or `new Redis({ sentinels, name })` gives a user.
const connect = (options: RedisOptions = {}): Redis | Cluster => (clusterNodes
  ? new Cluster(clusterNodes, { redisOptions: options })
  : sentinels ? new Redis({ sentinels, name: sentinelName, ...options }) : new Redis(redisUrl, options))
const client = connect()
let lastError = ''
client.on('error', (error: Error) => {
  // ioredis emits one error per failed reconnect attempt; log each distinct message once.
  if (error.message !== lastError) console.error(`peer: redis error: ${error.message}`)
  lastError = error.message
})
client.on('ready', () => {
  lastError = ''
  console.log(`peer: redis ready at ${topology}`)
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
// On a Cluster rate-limit-redis asks for `sendCommandCluster`; ioredis routes a command by its own
// keys, so the `key` hint has no use here (a keyless SCRIPT LOAD goes to a random master).
const rateLimitStore = (prefix: string): RateLimitRedisStore => new RateLimitRedisStore(clusterNodes
  ? { prefix, sendCommandCluster: ({ command: [name = '', ...args] }) => sendCommand(name, ...args) }
  : { prefix, sendCommand })

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
    store: rateLimitStore('rl:login:'),
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
  store: rateLimitStore('rl:api:'),
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

// Background scans on raw BullMQ: one job per target (the target is the job id), the same job
// options and worker concurrency as the example's kit.queue('scan') / kit.worker('scan').
// BullMQ on a Cluster: the queue's name carries a hash tag, so all its keys hash to one slot.
const queueName = clusterNodes ? '{scan}' : 'scan'
const scans = new Queue(queueName, { connection: client, defaultJobOptions: { attempts: 3, backoff: { type: 'exponential', delay: 1000 } } })
let lastQueueError = ''
const logQueueError = (where: string) => (error: Error): void => {
  if (error.message !== lastQueueError) console.error(`peer: bullmq ${where} error: ${error.message}`)
  lastQueueError = error.message
}
scans.on('error', logQueueError('queue'))
const workerConnection = connect({ maxRetriesPerRequest: null })
const worker = new Worker(queueName, async (job: Job<{ target: string }>) => {
  for (let step = 1; step <= 4; step++) {
    await new Promise((resolve) => setTimeout(resolve, scanJobMs / 4))
    await job.updateProgress(step * 25)
  }
  return { target: job.data.target, openPorts: [22, 80, 443], findings: [], scannedAt: new Date().toISOString() }
}, { connection: workerConnection, concurrency: 4 })
worker.on('error', logQueueError('worker'))

app.post('/api/scans/:target/jobs', async (req: Request, res: Response, next: NextFunction) => {
  const target = String(req.params.target).toLowerCase()
  if (!TARGET.test(target)) {
    res.status(400).json({ error: 'target must be a host name' })
    return
  }
  try {
    const job = await scans.add('scan', { target }, { jobId: target })
    const id = job.id ?? target
    res.status(202).location(`/api/jobs/scan/${encodeURIComponent(id)}`).json({ id, queue: 'scan', name: job.name, data: job.data })
  } catch (error) {
    next(error)
  }
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
  server.close(() => { client.disconnect(); workerConnection.disconnect(); process.exit(0) })
  server.closeIdleConnections()
  setTimeout(() => { server.closeAllConnections(); client.disconnect(); workerConnection.disconnect(); process.exit(0) }, 3000).unref()
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
