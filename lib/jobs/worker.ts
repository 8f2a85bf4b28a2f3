/**
 * `kit.worker(name, processor)`: a BullMQ Worker on connections of its own, plus the same
 * processor for jobs run from memory (local.ts).
 *
 * BullMQ blocks on its connections (BZPOPMIN) and needs `maxRetriesPerRequest: null`, so the
 * worker cannot share the kit's fail-fast client. It gets a copy of it (same server, TLS, ACL
 * user and reconnection pace) with BullMQ's settings, passed as a client instance: with an
 * options object BullMQ builds clients with its own reconnection strategy (up to 20 s between
 * attempts). BullMQ uses that instance and copies of it (one per blocking connection); each
 * connects at once, so a worker started while Redis is down waits for it instead of failing its
 * first attempt for good, and the worker remembers them all, so close() can end them when BullMQ's
 * own close hangs (it can, after Redis was killed) — and BullMQ never closes the instance it was given.
 */
import { EventEmitter } from 'node:events'
import { Worker, type Job } from 'bullmq'
import type { FeatureContext } from '../core/context.js'
import { isOutage } from '../core/outage.js'
import { isCluster, type RedisClient } from '../core/redis-types.js'
import { LocalRuns } from './local.js'
import type { WorkerConfig } from './options.js'
import type { JobQueue } from './queue.js'
import type { JobProgress, JobWorkerEvents, Processor, WorkerJob } from './types.js'

/** After the last running job returned, how long BullMQ may take to record it before close() stops waiting. */
const RECORD_GRACE_MS = 1000

/** What BullMQ requires of a blocking connection, on top of the kit's own settings. */
const BLOCKING = {
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
  autoResendUnfulfilledCommands: true,
  enableAutoPipelining: false,
  connectionName: 'express-redis-kit:worker',
  lazyConnect: true,
} as const

/** A copy of the kit's client for BullMQ to copy again; every copy connects at once and is remembered in `made`. */
function workerConnection(client: RedisClient, made: RedisClient[]): RedisClient {
  const template: RedisClient = isCluster(client)
    ? client.duplicate([], {
      enableOfflineQueue: true, enableAutoPipelining: false, lazyConnect: true,
      redisOptions: { ...client.options.redisOptions, maxRetriesPerRequest: null, connectionName: BLOCKING.connectionName },
    })
    : client.duplicate({ ...BLOCKING })
  const duplicate = template.duplicate.bind(template) as (...args: unknown[]) => RedisClient
  ;(template as { duplicate: unknown }).duplicate = (...args: unknown[]): RedisClient => connectNow(duplicate(...args), made)
  return connectNow(template, made)
}

/**
 * Starts connecting now: BullMQ calls connect() itself on a client that has not started, and
 * a first attempt that fails then (Redis down) leaves its connection failed for good. A client
 * already connecting is waited for instead, through any number of reconnection attempts.
 */
function connectNow(client: RedisClient, made: RedisClient[]): RedisClient {
  made.push(client)
  client.on('error', () => {}) // BullMQ listens too; this one stays after BullMQ let go
  client.connect().catch(() => {}) // a failed attempt is retried by the kit's retry strategy
  return client
}

class BullWorkerJob implements WorkerJob {
  readonly local = false
  constructor(private readonly job: Job, readonly queue: string) {}
  get id(): string { return String(this.job.id) }
  get name(): string { return this.job.name }
  get data(): unknown { return this.job.data as unknown }
  get attemptsMade(): number { return this.job.attemptsMade }
  updateProgress(progress: JobProgress): Promise<void> {
    return this.job.updateProgress(progress)
  }
  async log(line: string): Promise<void> {
    await this.job.log(line)
  }
}

/**
 * BullMQ's close() waits for the running jobs, and until then keeps renewing their locks and
 * checking for stalled jobs on timers that hold the process open. A job the worker gave up on is
 * left to stalled-job recovery, which needs its lock to expire: both timers stop. BullMQ has no
 * public call for it; `lockManager` and `stalledCheckStopper` are the Worker's own (pinned BullMQ 6).
 */
function stopTimers(worker: Worker): void {
  const own = worker as unknown as { lockManager?: { close?: () => Promise<void> }; stalledCheckStopper?: () => void }
  own.lockManager?.close?.().catch(() => {})
  own.stalledCheckStopper?.()
}

function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) }),
  ]).finally(() => clearTimeout(timer))
}

export class JobWorker<D = unknown, R = unknown> extends EventEmitter<JobWorkerEvents<R>> {
  /** Runs jobs from memory (run-local, Redis disabled). */
  readonly local: LocalRuns
  private bull: Worker | undefined
  private readonly connections: RedisClient[] = []
  private active = 0
  private idle: (() => void) | undefined
  private closing: Promise<void> | undefined

  constructor(
    private readonly ctx: FeatureContext,
    private readonly queue: JobQueue,
    private readonly processor: Processor<D, R>,
    private readonly config: WorkerConfig,
  ) {
    super()
    this.local = new LocalRuns(queue.name, processor as Processor, config.concurrency, {
      completed: (id, result) => this.completed(id, result as R, true),
      failed: (id, error) => this.failed(id, error, true),
    })
    const client = ctx.client
    if (client) this.start(client)
  }

  /** The queue's name, as given to `kit.worker()`. */
  get name(): string {
    return this.queue.name
  }

  /** Jobs this worker is running now (from Redis and from memory). */
  get running(): number {
    return this.active + this.local.running
  }

  /**
   * BullMQ's Worker underneath (undefined when Redis is disabled), e.g. to pause it. kit.close()
   * closes it; do not close it yourself.
   */
  get bullmq(): Worker | undefined {
    return this.bull
  }

  /**
   * Stops taking jobs and waits for running ones up to `closeTimeoutMs`; then ends the worker's
   * connections and leaves its jobs to stalled-job recovery. Called by kit.close().
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private start(client: RedisClient): void {
    const worker = new Worker(this.queue.bullName, this.run, {
      connection: workerConnection(client, this.connections),
      prefix: this.queue.bullPrefix,
      concurrency: this.config.concurrency,
      lockDuration: this.config.lockDuration,
      stalledInterval: this.config.stalledInterval,
      maxStalledCount: this.config.maxStalledCount,
      skipVersionCheck: true,
    })
    worker.on('error', this.onError)
    worker.on('completed', (job: Job, result: unknown) => { this.completed(String(job.id), result as R, false) })
    worker.on('failed', (job: Job | undefined, error: Error) => { if (job) this.failed(String(job.id), error, false) })
    this.bull = worker
  }

  private completed(id: string, result: R, local: boolean): void {
    this.queue.counters.count('completed', id)
    this.emit('completed', id, result, local)
  }

  private failed(id: string, error: Error, local: boolean): void {
    this.queue.counters.count('failed', id)
    this.emit('failed', id, error, local)
  }

  private readonly run = async (job: Job): Promise<R> => {
    this.active++
    try {
      return await this.processor(new BullWorkerJob(job, this.queue.name) as WorkerJob<D>)
    } finally {
      this.active--
      if (this.active === 0) {
        const idle = this.idle
        this.idle = undefined
        idle?.()
      }
    }
  }

  /**
   * Connection errors come with every reconnection attempt during an outage, which the kit
   * reports already; the rest (a lost lock, a script error) once per outage.
   */
  private readonly onError = (error: Error): void => {
    if (this.closing || (isOutage(error) && this.ctx.backend !== 'redis')) return
    this.ctx.log.warnOnce('ERR_KIT_QUEUE_WORKER', `worker '${this.queue.name}': ${error.message}`, `${this.queue.name}\0outage`)
  }

  private async shutdown(): Promise<void> {
    const deadline = Date.now() + this.config.closeTimeoutMs
    const localDone = this.local.close()
    const bull = this.bull
    if (bull) {
      let closed = false
      const closing = bull.close().then(() => { closed = true }, () => { closed = true })
      // BullMQ records a job's result after its processor returned, then closes; while Redis is
      // away it would wait for ever. A job it had fetched just before close() may start meanwhile.
      const grace = this.ctx.backend === 'redis' ? RECORD_GRACE_MS : 100
      while (!closed) {
        if (!(await settleWithin(this.whenIdle(), deadline - Date.now()))) {
          this.ctx.log.warn('ERR_KIT_QUEUE_CLOSE', `worker '${this.queue.name}' still ran ${this.active} job(s) after closeTimeoutMs `
            + `(${this.config.closeTimeoutMs} ms); its connections were closed and those jobs are left to stalled-job recovery `
            + 'by another worker (once their lock expired, after lockDuration).')
          break
        }
        await settleWithin(closing, grace)
        if (this.active === 0) break
      }
      for (const connection of this.connections) connection.disconnect()
      if (!closed) stopTimers(bull)
    }
    await settleWithin(localDone, Math.max(0, deadline - Date.now()))
  }

  /** Resolves once no processor of this worker runs a BullMQ job. */
  private whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const previous = this.idle
      this.idle = () => { previous?.(); resolve() }
    })
  }
}
