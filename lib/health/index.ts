/**
 * The health router. `GET /redis` is a live check of Redis itself (503 when it fails);
 * `GET /` says whether the app is serving, and stays 200 while features run from memory,
 * which is what liveness/readiness probes should watch.
 *
 * Health endpoints are usually reachable without a login, so by default they say how things are,
 * never where (the server's host and port) or why (error messages, which name hosts, users, ACL
 * rules): `details` opts in. Concurrent `/redis` checks share one PING, so a burst of probes or a
 * flood of requests costs Redis one command at a time.
 */
import express, { type Request, type Response, type Router } from 'express'
import type { ConnectionManager } from '../core/manager.js'
import { Options, show } from '../core/options.js'
import type { QueueHealth } from '../jobs/types.js'

/** `kit.healthRouter(options)`. */
export interface HealthRouterOptions {
  /**
   * Whether responses name the Redis server (host and port), the last connection error and why
   * `/health/redis` failed. `true` shows them to every caller (mount the router behind your own
   * authentication); a function decides per request, e.g. `(req) => req.ip === '127.0.0.1'` or
   * `(req) => req.session?.user === 'admin'`. Without details, statuses, states, backends and
   * counts are still reported. Defaults to `false`.
   */
  details: boolean | ((req: Request) => boolean)
}

const options = new Options('healthRouter')

function parseHealthOptions(raw: unknown): (req: Request) => boolean {
  const given = options.object<HealthRouterOptions>(raw, 'kit.healthRouter(options)', 'kit.healthRouter({ details: false })')
  options.known(given, ['details'])
  const details: unknown = given.details
  if (typeof details === 'function') return details as (req: Request) => boolean
  if (details !== undefined && typeof details !== 'boolean') {
    options.fail('details', `is ${show(details)}`, 'Use true, false (the default) or a function (req) => boolean.')
  }
  const fixed = details === true
  return () => fixed
}

/** The PING each manager has in flight: concurrent checks wait for it instead of sending their own. */
const pings = new WeakMap<ConnectionManager, Promise<number>>()

function sharedPing(manager: ConnectionManager): Promise<number> {
  let ping = pings.get(manager)
  if (ping === undefined) {
    ping = manager.ping().finally(() => { pings.delete(manager) })
    pings.set(manager, ping)
  }
  return ping
}

/**
 * @param queues each job queue's counts and held jobs (bounded by commandTimeoutMs; counts are
 *   null while Redis cannot answer), or undefined when the app has no queue.
 */
export function createHealthRouter(
  manager: ConnectionManager,
  queues: () => Promise<Record<string, QueueHealth>> | undefined = () => undefined,
  raw?: Readonly<Partial<HealthRouterOptions>>,
): Router {
  const showDetails = parseHealthOptions(raw)
  const router = express.Router()

  router.get('/redis', async function redisHealth(req: Request, res: Response) {
    res.set('Cache-Control', 'no-store')
    if (manager.state === 'disabled') {
      res.status(200).json({ status: 'disabled', message: 'Redis is not available or not configured' })
      return
    }
    // The kit's own verdict first: a live PING can succeed while the kit cannot use Redis
    // (a database the server does not have, writes refused, a replay still running).
    try {
      const latency = await sharedPing(manager)
      res.status(200).json({ status: 'healthy', latency_ms: Math.round(latency * 100) / 100, message: 'Redis connection is healthy' })
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      res.status(503).json({
        status: 'unhealthy',
        ...(showDetails(req) ? { error: `${manager.server}: ${reason}` } : {}),
        message: 'Redis connection failed',
      })
    }
  })

  router.get('/', async function summary(req: Request, res: Response) {
    res.set('Cache-Control', 'no-store')
    const details = showDetails(req)
    // Held jobs wait for Redis like journaled writes do: the app is serving, so this stays 200.
    const jobs = await queues()
    const backend = manager.backend()
    const features: Record<string, string> = {}
    for (const name of manager.features.names) features[name] = backend
    const state = manager.state
    res.status(200).json({
      status: state === 'ready' || state === 'disabled' ? 'ok' : 'degraded',
      redis: {
        state,
        since: manager.since.toISOString(),
        ...(details && manager.lastError && state !== 'ready' ? { error: manager.lastError.message } : {}),
      },
      features,
      ...(details ? { server: manager.server } : {}),
      journal: { pending: manager.pending, batchesInDoubt: manager.batchesInDoubt },
      ...(jobs && Object.keys(jobs).length > 0 ? { queues: jobs } : {}),
    })
  })

  return router
}
