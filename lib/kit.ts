/** createKit(): one connection manager, every feature bound to it. */
import type { Request, RequestHandler, Response, Router } from 'express'
import { CacheRuntime, createCache, type CacheOptions, type InvalidateTarget } from './cache/index.js'
import { KeyValueClient } from './client/index.js'
import { resolveConfig } from './core/config.js'
import { ConnectionManager } from './core/manager.js'
import { createHealthRouter, type HealthRouterOptions } from './health/index.js'
import { JobsRuntime, type JobQueue, type JobWorker, type Processor, type QueueOptions, type WorkerOptions } from './jobs/index.js'
import { createMetricsRouter, kitSource, startOpenTelemetry, statsOf, type KitStats, type MetricsRouterOptions, type MetricsSource, type OpenTelemetryHandle } from './metrics/index.js'
import type { RateLimitRequestHandler } from 'express-rate-limit'
import { createRateLimit, FailoverRateLimitStore, LimiterNames, type FailoverRateLimitStoreOptions, type RateLimitOptions } from './rate-limit/index.js'
import { parseRateLimitStoreOptions } from './rate-limit/options.js'
import { createSessionMiddleware, FailoverSessionStore, login, logout, type LoginData, type SessionMiddleware, type SessionOptions, type SessionStoreOptions } from './session/index.js'
import type { KitEvents, KitOptions, KitState } from './types.js'

/** The kit's insides, for its own tests. Not exported from the package entry. */
export const INTERNALS: unique symbol = Symbol('express-redis-kit internals')

export class Kit {
  /** get / set / delete / exists / increment / expire, on Redis or (during an outage) memory. */
  readonly client: KeyValueClient
  private readonly manager: ConnectionManager
  /** What every cache middleware of this kit shares, created on first use. */
  private cacheRuntime: CacheRuntime | undefined
  /** The names of this kit's limiters, which must differ. */
  private readonly limiterNames = new LimiterNames()
  /** This kit's job queues and workers, created on first use. */
  private jobsRuntime: JobsRuntime | undefined
  /** What stats(), metricsRouter() and OpenTelemetry read. */
  private readonly metricsSource: MetricsSource
  private readonly telemetry: OpenTelemetryHandle | undefined

  constructor(options: Readonly<Partial<KitOptions>> = {}) {
    this.manager = new ConnectionManager(resolveConfig(options))
    this.client = new KeyValueClient(this.manager.context('client', ''))
    this.metricsSource = kitSource(this.manager, () => this.jobsRuntime?.summary())
    this.telemetry = this.manager.config.telemetry ? startOpenTelemetry(this.metricsSource) : undefined
  }

  /** @internal */
  get [INTERNALS](): ConnectionManager {
    return this.manager
  }

  private cache_(): CacheRuntime {
    this.cacheRuntime ??= new CacheRuntime(this.manager.context('cache', 'cache:'))
    return this.cacheRuntime
  }

  private jobs_(): JobsRuntime {
    this.jobsRuntime ??= new JobsRuntime(this.manager.context('jobs', ''))
    return this.jobsRuntime
  }

  /** `'disabled' | 'connecting' | 'ready' | 'degraded'`. */
  get state(): KitState {
    return this.manager.state
  }

  /** Resolves once the first connection attempt settled either way; never rejects because Redis is down. */
  ready(): Promise<void> {
    return this.manager.ready()
  }

  on<E extends keyof KitEvents>(event: E, listener: (...args: KitEvents[E]) => void): this {
    this.manager.on(event, listener as never)
    return this
  }

  once<E extends keyof KitEvents>(event: E, listener: (...args: KitEvents[E]) => void): this {
    this.manager.once(event, listener as never)
    return this
  }

  off<E extends keyof KitEvents>(event: E, listener: (...args: KitEvents[E]) => void): this {
    this.manager.off(event, listener as never)
    return this
  }

  /**
   * express-session middleware over a failover store: connect-redis while Redis is up, memory
   * while it is down, with logins and logouts made during an outage written back afterwards.
   * Needs a `secret` (or `SESSION_SECRET`); the store is on `.store`.
   */
  session(options?: Readonly<Partial<SessionOptions>>): SessionMiddleware {
    return createSessionMiddleware(this.manager.context('session', 'session:'), options)
  }

  /**
   * The failover session store on its own, for express-session configured by hand:
   * `session({ store: kit.sessionStore({ ttlMs }), secret, … })`.
   */
  sessionStore(options?: Readonly<Partial<SessionStoreOptions>>): FailoverSessionStore {
    return new FailoverSessionStore(this.manager.context('session', 'session:'), options)
  }

  /**
   * Logs a user in without session fixation: a new session id (the one the browser brought is
   * destroyed), `data` stored in it, saved before this resolves. Needs `kit.session()` on the route.
   */
  login(req: Request, data: LoginData): Promise<void> {
    return login(req, data)
  }

  /** Destroys the request's session (a late save of it cannot bring it back) and clears its cookie. */
  logout(req: Request, res: Response): Promise<void> {
    return logout(req, res)
  }

  /**
   * The failover rate-limit store on its own, for express-rate-limit configured by hand:
   * `rateLimit({ store: kit.rateLimitStore({ name: 'api' }), … })`.
   */
  rateLimitStore(options?: Readonly<Partial<FailoverRateLimitStoreOptions>>): FailoverRateLimitStore {
    return new FailoverRateLimitStore(this.manager.context('rateLimit', 'rate:'), parseRateLimitStoreOptions(options))
  }

  /**
   * express-rate-limit middleware whose count lives in Redis (rate-limit-redis), shared by every
   * instance of the app; while Redis is down `onRedisDown` decides ('memory' by default), and hits
   * counted in memory are added to Redis when it is back. Give each limiter its own `name`.
   */
  rateLimit(options?: Readonly<Partial<RateLimitOptions>>): RateLimitRequestHandler {
    return createRateLimit(this.manager.context('rateLimit', 'rate:'), this.limiterNames, options)
  }

  /**
   * Response cache middleware for GET/HEAD routes: one Redis read per hit, one handler run per key
   * however many requests miss at once, stale-while-revalidate / stale-if-error, and memory while
   * Redis is down. Never stores responses that set cookies or say private/no-store.
   */
  cache(options?: Readonly<Partial<CacheOptions>>): RequestHandler {
    return createCache(this.cache_(), options)
  }

  /**
   * Removes cached responses: `{ key }` (all variants of one key), `{ prefix }` (keys starting
   * with it) or `{ tag }`. Seen by every instance; made during an outage, it is replayed to Redis
   * before the kit uses Redis again.
   */
  invalidate(target: InvalidateTarget): Promise<void> {
    return this.cache_().invalidate(target)
  }

  /**
   * A job queue on BullMQ (created once per name; without options, returns the one created before).
   * Its keys are `<keyPrefix>job:<name>:<jobId>`. `add()` answers within `commandTimeoutMs` in every
   * state; while Redis cannot take a job, `onRedisDown` decides: `'hold'` it and add it once Redis
   * is back (default), `'run-local'` in this process, or `'reject'` it (`ERR_KIT_QUEUE_UNAVAILABLE`).
   */
  queue<D = unknown, R = unknown>(name: string, options?: Readonly<Partial<QueueOptions>>): JobQueue<D, R> {
    return this.jobs_().queue<D, R>(name, options)
  }

  /**
   * Runs the queue's jobs in this process with `processor` (one worker per queue and kit), on
   * connections of its own that follow Redis through outages; `kit.close()` lets running jobs finish
   * (up to `closeTimeoutMs`). It also runs the jobs `'run-local'` keeps in memory.
   */
  worker<D = unknown, R = unknown>(name: string, processor: Processor<D, R>, options?: Readonly<Partial<WorkerOptions>>): JobWorker<D, R> {
    return this.jobs_().worker<D, R>(name, processor, options)
  }

  /**
   * What the kit has done so far, as one plain object: state, time degraded, Redis calls by
   * outcome and latency, journal backlog and replays, memory twins, cache results, limiter
   * decisions, session operations, job events. The numbers `/metrics` serves.
   */
  stats(): KitStats {
    return statsOf(this.metricsSource)
  }

  /**
   * An express Router serving the kit's metrics in the Prometheus text format: mount it at
   * `/metrics`. Needs prom-client (an optional peer), or pass your own `registry` to add the
   * kit's metrics to it (once per registry).
   */
  metricsRouter(options?: Readonly<Partial<MetricsRouterOptions>>): Router {
    return createMetricsRouter(this.metricsSource, options)
  }

  /**
   * An express Router: mount it at `/health` for `GET /health` and `GET /health/redis`. Server
   * names, ports and error messages are left out unless `details` allows them (`true`, or a
   * function of the request).
   */
  healthRouter(options?: Readonly<Partial<HealthRouterOptions>>): Router {
    return createHealthRouter(this.manager, () => this.jobsRuntime?.summary(), options)
  }

  /**
   * Workers stop taking jobs and finish running ones (up to their `closeTimeoutMs`), queues add
   * held jobs if Redis is there; then the connection and every timer close, and the process can
   * exit by itself.
   */
  async close(): Promise<void> {
    this.telemetry?.stop()
    await this.jobsRuntime?.close()
    await this.manager.close()
  }
}

/** Creates a kit from options, falling back to REDIS_URL, REDIS_PASSWORD, REDIS_DB and ENABLE_REDIS. */
export function createKit(options: Readonly<Partial<KitOptions>> = {}): Kit {
  return new Kit(options)
}
