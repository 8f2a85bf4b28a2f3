/**
 * The health router. `GET /redis` is a live check of Redis itself (503 when it fails);
 * `GET /` says whether the app is serving, and stays 200 while features run from memory,
 * which is what liveness/readiness probes should watch.
 */
import express, { type Request, type Response, type Router } from 'express'
import type { ConnectionManager } from '../core/manager.js'
import type { QueueHealth } from '../jobs/types.js'

/**
 * @param queues each job queue's counts and held jobs (bounded by commandTimeoutMs; counts are
 *   null while Redis cannot answer), or undefined when the app has no queue.
 */
export function createHealthRouter(manager: ConnectionManager, queues: () => Promise<Record<string, QueueHealth>> | undefined = () => undefined): Router {
  const router = express.Router()

  router.get('/redis', async function redisHealth(_req: Request, res: Response) {
    res.set('Cache-Control', 'no-store')
    if (manager.state === 'disabled') {
      res.status(200).json({ status: 'disabled', message: 'Redis is not available or not configured' })
      return
    }
    // The kit's own verdict first: a live PING can succeed while the kit cannot use Redis
    // (a database the server does not have, writes refused, a replay still running).
    try {
      const latency = await manager.ping()
      res.status(200).json({ status: 'healthy', latency_ms: Math.round(latency * 100) / 100, message: 'Redis connection is healthy' })
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      res.status(503).json({ status: 'unhealthy', error: `${manager.server}: ${reason}`, message: 'Redis connection failed' })
    }
  })

  router.get('/', async function summary(_req: Request, res: Response) {
    res.set('Cache-Control', 'no-store')
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
        ...(manager.lastError && state !== 'ready' ? { error: manager.lastError.message } : {}),
      },
      features,
      server: manager.server,
      journal: { pending: manager.pending, batchesInDoubt: manager.batchesInDoubt },
      ...(jobs && Object.keys(jobs).length > 0 ? { queues: jobs } : {}),
    })
  })

  return router
}
