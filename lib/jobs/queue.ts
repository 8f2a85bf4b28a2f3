/**
 * `kit.queue(name)`: a BullMQ Queue on the kit's own connection, behind the connection manager.
 *
 * - Redis ready: add() is BullMQ's add, bounded by `commandTimeoutMs`. An id the caller gave is
 *   read back: a job of that id still waiting or active is returned instead (one job per id at a
 *   time); a finished one is replaced by the new job.
 * - Redis down, hung or not reached yet: `onRedisDown` answers — hold the job in the outbox, run it
 *   in this process, or refuse. An add that got no answer in time is held whatever the policy
 *   (except 'reject'): Redis may have run it, and only a flush with the same id can tell.
 * - Back on Redis: the outbox is flushed in order, batch by batch, each batch removed only once
 *   BullMQ answered; adds made meanwhile queue behind it, so none overtakes a held job.
 */
import { Job, Queue } from 'bullmq'
import type { MemoryReason } from '../core/calls.js'
import type { FeatureContext } from '../core/context.js'
import { KitError } from '../core/errors.js'
import type { RedisClient } from '../core/redis-types.js'
import { AddCall, CountsCall, FlushCall, NO_COUNTS, queueUnavailable, ReadCall, type CallHost, type Placed } from './calls.js'
import { JobCounters } from './events.js'
import { infoOfAdded, infoOfBull, infoOfHeld, parseData, type PendingJob } from './info.js'
import type { LocalRuns } from './local.js'
import { encodeData, parseAddOptions, type QueueConfig } from './options.js'
import { Outbox, type HeldJob } from './outbox.js'
import { definedCommands, sendNewScriptsDirectly } from './pipelining.js'
import type { AddOptions, JobInfo, JobState, QueueHealth } from './types.js'
import { isOutage } from '../core/outage.js'

/** Held jobs per flush round trip: small enough that one batch never looks like a hang. */
const FLUSH_BATCH = 50

export function closedError(): KitError {
  return new KitError('ERR_KIT_CLOSED', 'express-redis-kit: the kit was closed (kit.close()); close the HTTP server before the kit, so no request reaches it afterwards.')
}

export class JobQueue<D = unknown, R = unknown> implements CallHost {
  /** The name BullMQ knows the queue by: hash-tagged (`{scan}`) on a Cluster. */
  readonly bullName: string
  /** BullMQ's key prefix: the kit's keyPrefix, then the queue's `prefix`. */
  readonly bullPrefix: string
  /** This queue's job events, on the kit's metrics (events.ts); the worker counts its own through it. */
  readonly counters: JobCounters
  private readonly bull: Queue | undefined
  private readonly outbox: Outbox
  private flushing: Promise<void> | undefined
  private local: LocalRuns | undefined
  private closed = false

  constructor(
    private readonly ctx: FeatureContext,
    readonly name: string,
    readonly config: QueueConfig,
    bullName: string,
  ) {
    this.bullName = bullName
    this.bullPrefix = ctx.prefix + config.prefix
    this.outbox = new Outbox(config.maxHeld)
    this.counters = new JobCounters(ctx.metrics, name)
    const client = ctx.client
    this.bull = client === undefined ? undefined : this.createBull(client)
  }

  /**
   * BullMQ's Queue underneath, for tools that take one (the @bull-board dashboard). Undefined when
   * Redis is disabled. Calls made on it directly skip the kit: no outbox, no bound on their wait.
   */
  get bullmq(): Queue | undefined {
    return this.bull
  }

  /** Jobs held in this process, waiting for Redis. */
  get held(): number {
    return this.outbox.size
  }

  /**
   * Adds a job. Answers within `commandTimeoutMs` in every state of the kit: `state` is BullMQ's
   * (`'waiting'`, `'delayed'` …), `'held'` while Redis cannot take it (`onRedisDown: 'hold'`), or
   * the state of the job already using this `jobId`. Throws `ERR_KIT_QUEUE_UNAVAILABLE` when the
   * policy is `'reject'` (or the outbox is full) and Redis is unavailable.
   */
  add(name: string, data: D, options?: Readonly<Partial<AddOptions>>): Promise<JobInfo<D, R>> {
    let job: PendingJob
    try {
      job = this.pending(name, data, options)
    } catch (error) {
      return Promise.reject(error)
    }
    const known = this.knownHere(job.id)
    if (known) return Promise.resolve(known as JobInfo<D, R>)
    try {
      if (this.bull === undefined) return Promise.resolve(this.runLocal(job) as JobInfo<D, R>)
    } catch (error) {
      return Promise.reject(error)
    }
    // Held jobs go first: an add made while they are being flushed waits its turn behind them.
    if (this.outbox.size > 0 && this.ctx.backend === 'redis') return this.behindOutbox(job) as Promise<JobInfo<D, R>>
    return this.ctx.run(new AddCall(this, job, data)) as Promise<JobInfo<D, R>>
  }

  /**
   * A job by id: held or run by this process, else read from Redis (state, progress, result,
   * failedReason, attemptsMade); undefined when there is no such job. Throws
   * `ERR_KIT_QUEUE_UNAVAILABLE` when Redis is unavailable and the job is not one of this process's.
   */
  async getJob(id: string): Promise<JobInfo<D, R> | undefined> {
    if (typeof id !== 'string' || id === '') return undefined
    if (this.closed) throw closedError()
    const known = this.knownHere(id, true)
    if (known) return known as JobInfo<D, R>
    if (this.bull === undefined) return undefined
    return this.ctx.run(new ReadCall(this, id)) as Promise<JobInfo<D, R> | undefined>
  }

  /** BullMQ's counts (null while Redis cannot answer) and the held jobs, for `GET /health`. */
  async health(): Promise<Omit<QueueHealth, 'workers'>> {
    const counts = this.bull === undefined || this.closed ? { ...NO_COUNTS } : await this.ctx.run(new CountsCall(this))
    return { ...counts, held: this.outbox.size, local: this.local?.size ?? 0 }
  }

  /** The worker of this queue in this process, for jobs run from memory. */
  attachLocal(local: LocalRuns): void {
    this.local = local
  }

  /** Redis is back: held jobs go to BullMQ, oldest first. */
  flush(): Promise<void> {
    if (this.outbox.size === 0 || this.bull === undefined) return Promise.resolve()
    this.flushing ??= this.drain().finally(() => { this.flushing = undefined })
    return this.flushing
  }

  /** One last flush if Redis is there (bounded), then whatever is still held is dropped and logged. */
  async close(boundMs: number): Promise<void> {
    if (this.closed) return
    if (this.ctx.backend === 'redis' && this.outbox.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.flush(), new Promise<void>((resolve) => { timer = setTimeout(resolve, boundMs) })])
      clearTimeout(timer)
    }
    this.closed = true
    const dropped = this.outbox.clear()
    for (const job of dropped) job.waiter?.(closedError())
    if (dropped.length > 0) {
      this.ctx.log.warn('ERR_KIT_QUEUE_DROPPED', `queue '${this.name}': kit.close() came before Redis could take ${dropped.length} held job(s) `
        + `(first: ${dropped[0]?.id ?? ''}); they were not added. Close the kit once Redis is back, or use onRedisDown: 'reject' to refuse jobs instead of holding them.`)
    }
    // The kit's connection is shared: closing the Queue only detaches BullMQ from it.
    await this.bull?.close().catch(() => {})
  }

  // ---- the calls' halves (calls.ts) ----

  place(job: PendingJob, data: unknown): Promise<Placed> {
    const bull = this.bull as Queue
    const replace = job.userId && !job.sent
    job.sent = true
    const adding = bull.add(job.name, data, job.options)
    // An id of the kit's own is new: nothing to read back.
    if (!job.userId) return adding.then(() => ({ info: infoOfAdded(this.name, job, data), added: true }))
    return adding.then((created) => this.settle(job, created, replace))
  }

  added(id: string): void {
    this.counters.count('added', id)
  }

  whileDown(job: PendingJob, reason: MemoryReason): JobInfo {
    const policy = this.config.onRedisDown
    if (policy === 'reject') {
      throw queueUnavailable(this.name, `cannot take jobs while Redis is unavailable (onRedisDown: 'reject'${reason === 'in-doubt'
        ? "; this add got no answer in time, so Redis may still add it: retry with the same jobId" : ''}); answer 503 with Retry-After and let the client retry`)
    }
    if (policy === 'hold' || reason === 'in-doubt') return this.hold(job, reason === 'in-doubt')
    return this.runLocal(job)
  }

  async placeHeld(jobs: readonly HeldJob[]): Promise<JobInfo[]> {
    const bull = this.bull as Queue
    const replace = jobs.map((job) => job.userId && !job.sent)
    for (const job of jobs) job.sent = true
    const created = await bull.addBulk(jobs.map((job) => ({ name: job.name, data: parseData<unknown>(job.data), opts: job.options })))
    const placed = await Promise.all(jobs.map((job, i) => this.settle(job, created[i] as Job, replace[i] === true)))
    return placed.map(({ info }) => info)
  }

  async read(id: string): Promise<JobInfo | undefined> {
    const bull = this.bull as Queue
    const job = await Job.fromId(bull, id)
    if (!job) return undefined
    return infoOfBull(this.name, job, await this.stateOf(job))
  }

  async counts(): Promise<Omit<QueueHealth, 'held' | 'local' | 'workers'>> {
    const bull = this.bull as Queue
    const counts = await bull.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed')
    return {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
      failed: counts.failed ?? 0,
      completed: counts.completed ?? 0,
    }
  }

  // ---- internals ----

  /** The job add() was asked for, checked (name, data, options) and stamped with its id and time. */
  private pending(name: string, data: unknown, options: unknown): PendingJob {
    if (typeof name !== 'string' || name === '') {
      throw new KitError('ERR_KIT_INVALID_ARGUMENT', `express-redis-kit: queue '${this.name}' add(name, data): the job name must be a non-empty string, e.g. add('scan', { target })`)
    }
    const text = encodeData(this.name, data)
    const { jobId, given, options: settings } = parseAddOptions(options, this.name)
    if (this.closed) throw closedError()
    const at = Date.now()
    // The queue's defaults are BullMQ's defaultJobOptions; a job run from memory merges them itself.
    // BullMQ stamps a job with the time it is added; the time of add() goes with a job only when it
    // matters: held (delays count from add()), or under the caller's id (settle() tells it apart by it).
    const bullOptions = given ? { ...settings, jobId, timestamp: at } : { ...settings, jobId }
    return { id: jobId, name, data: text, at, userId: given, sent: false, options: bullOptions }
  }

  private createBull(client: RedisClient): Queue {
    const before = definedCommands(client)
    const queue = new Queue(this.bullName, {
      connection: client,
      prefix: this.bullPrefix,
      defaultJobOptions: this.config.defaults,
      // BullMQ's version check prints to the console (the kit logs through its logger), and the
      // kit already requires Redis 6.
      skipVersionCheck: true,
    })
    // BullMQ defines its scripts on the client once it connected (pipelining.ts).
    queue.waitUntilReady().then(() => sendNewScriptsDirectly(client, before), () => {})
    // BullMQ re-emits every error of the shared connection; the manager already reports outages.
    queue.on('error', (error: Error) => {
      if (isOutage(error)) return
      this.ctx.log.warnOnce('ERR_KIT_QUEUE_WORKER', `queue '${this.name}': ${error.message}`, `${this.name}\0outage`)
    })
    return queue
  }

  /** A job this process holds or runs with this id: add() answers it instead of adding another. */
  private knownHere(id: string, finishedToo = false): JobInfo | undefined {
    const held = this.outbox.size > 0 ? this.outbox.get(id) : undefined
    if (held) return infoOfHeld(this.name, held)
    if (this.local === undefined || this.local.size === 0) return undefined
    const local = this.local.get(id)
    if (local && (finishedToo || local.state === 'waiting' || local.state === 'active' || local.state === 'delayed')) return { ...local }
    return undefined
  }

  /**
   * What an add with the caller's id became. BullMQ answers a duplicate id as if it had added it,
   * so the stored job is read back: ours (same timestamp and data), another one still to run or
   * running (that one is the answer), or another one finished (replaced, unless this job may
   * already have reached Redis before — then the finished one may be itself).
   */
  private async settle(job: PendingJob, created: Job, replace: boolean): Promise<Placed> {
    if (!job.userId) return { info: infoOfAdded(this.name, job, created.data), added: true }
    const bull = this.bull as Queue
    const stored = await Job.fromId(bull, job.id)
    if (!stored || (stored.timestamp === job.options.timestamp && JSON.stringify(stored.data) === job.data)) {
      return { info: infoOfAdded(this.name, job, created.data), added: true }
    }
    const state = await this.stateOf(stored)
    if (replace && (state === 'completed' || state === 'failed')) {
      // Not removed when it became active again meanwhile (a retry): then that run is the answer.
      await bull.remove(job.id)
      return this.settle(job, await bull.add(job.name, created.data, job.options), false)
    }
    return { info: infoOfBull(this.name, stored, state), added: false }
  }

  private async stateOf(job: Job): Promise<JobState> {
    return (await job.getState())
  }

  private hold(job: PendingJob, sent: boolean): JobInfo {
    const already = this.outbox.get(job.id)
    if (already) {
      already.sent ||= sent
      return infoOfHeld(this.name, already)
    }
    // Added later, it keeps its place in time: delays count from add(), and createdAt says so.
    const held: HeldJob = { ...job, options: { ...job.options, timestamp: job.at }, sent }
    if (!this.outbox.push(held)) {
      this.ctx.log.warnOnce('ERR_KIT_QUEUE_FULL', `queue '${this.name}' holds ${this.outbox.max} job(s) (maxHeld) while Redis is unavailable; `
        + 'further add() calls throw ERR_KIT_QUEUE_UNAVAILABLE until Redis is back. Raise maxHeld if outages last this long. Logged once per outage.',
      `${this.name}\0outage`)
      throw queueUnavailable(this.name, `holds ${this.outbox.max} job(s) already (maxHeld) while Redis is unavailable; answer 503 with Retry-After`)
    }
    this.counters.count('held', job.id)
    return infoOfHeld(this.name, held)
  }

  private runLocal(job: PendingJob): JobInfo {
    if (!this.local) {
      throw queueUnavailable(this.name, `has no worker in this process to run the job from memory (${this.bull === undefined
        ? 'Redis is disabled' : "onRedisDown: 'run-local'"}); call kit.worker('${this.name}', processor) in this process`)
    }
    return this.local.start({ ...job, options: { ...this.config.defaults, ...job.options } })
  }

  /** Queues a job behind the held ones; answers once it reached Redis, or 'held' after commandTimeoutMs. */
  private behindOutbox(job: PendingJob): Promise<JobInfo> {
    let info: JobInfo
    try {
      info = this.hold(job, false)
    } catch (error) {
      return Promise.reject(error)
    }
    const held = this.outbox.get(job.id) as HeldJob
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { held.waiter = undefined; resolve(info) }, this.ctx.settings.commandTimeoutMs)
      held.waiter = (outcome) => {
        clearTimeout(timer)
        if (outcome instanceof Error) reject(outcome)
        else resolve(outcome)
      }
      void this.flush()
    })
  }

  private async drain(): Promise<void> {
    let size = FLUSH_BATCH
    while (this.outbox.size > 0 && this.ctx.backend === 'redis' && !this.closed) {
      const batch = this.outbox.front(size)
      let placed: JobInfo[] | undefined
      try {
        placed = await this.ctx.run(new FlushCall(this, batch))
      } catch (error) {
        if (this.closed || (error instanceof KitError && error.code === 'ERR_KIT_CLOSED')) return
        // Redis refused something about the data: find which job, one at a time.
        if (batch.length > 1) { size = 1; continue }
        this.refused(batch[0] as HeldJob, error)
        continue
      }
      if (placed === undefined) return // Redis went away: the batch stays and is sent again
      this.outbox.release(batch.length)
      batch.forEach((job, i) => {
        this.counters.count('flushed', job.id)
        const info = placed[i]
        if (info) job.waiter?.(info)
      })
      // Requests get a turn between batches.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private refused(job: HeldJob, error: unknown): void {
    this.outbox.drop(job)
    job.waiter?.(error instanceof Error ? error : new Error(String(error)))
    this.ctx.log.warn('ERR_KIT_QUEUE_DROPPED', `queue '${this.name}': Redis refused held job ${job.id} (${error instanceof Error ? error.message : String(error)}); it was not added`)
  }
}
