/**
 * One kit's job queues and workers: created by name (once each), flushed when the kit is back on
 * Redis, summarised for `GET /health`, closed by `kit.close()`.
 */
import type { FeatureContext } from '../core/context.js'
import { invalidArgument, invalidOption } from '../core/errors.js'
import { show } from '../core/options.js'
import { checkQueueName, parseQueueOptions, parseWorkerOptions, type QueueConfig } from './options.js'
import { closedError, JobQueue } from './queue.js'
import type { Processor, QueueHealth, QueueOptions, WorkerOptions } from './types.js'
import { JobWorker } from './worker.js'

/** A Redis Cluster hash tag: `{…}` with something inside. */
const HASH_TAG = /\{[^}]+\}/

function dropsAtOnce(keep: boolean | number | { age?: number; count?: number } | undefined): boolean {
  return keep === true || keep === 0 || (typeof keep === 'object' && (keep.age === 0 || keep.count === 0))
}

export class JobsRuntime {
  private readonly queues = new Map<string, JobQueue>()
  private readonly workers = new Map<string, JobWorker>()
  private closed = false
  private evictionChecked = false

  constructor(private readonly ctx: FeatureContext) {
    ctx.onResume(() => this.resumed())
  }

  queue<D, R>(name: string, options?: Readonly<Partial<QueueOptions>>): JobQueue<D, R> {
    checkQueueName(name)
    if (this.closed) throw closedError()
    const config = parseQueueOptions(options, name)
    const existing = this.queues.get(name)
    if (existing) {
      if (options === undefined || JSON.stringify(existing.config) === JSON.stringify(config)) return existing as JobQueue<D, R>
      throw invalidArgument(`kit.queue('${name}', options)`, `queue '${name}' already exists in this kit with other options; `
        + `create it once, before kit.worker('${name}'), and share it (kit.queue('${name}') without options returns it)`)
    }
    this.checkClient()
    const queue = new JobQueue<D, R>(this.ctx, name, config, this.bullName(name, config))
    if (config.onRedisDown === 'hold' && (dropsAtOnce(config.defaults.removeOnComplete) || dropsAtOnce(config.defaults.removeOnFail))) {
      this.ctx.log.warnOnce('ERR_KIT_QUEUE_RETENTION', `queue '${name}' removes finished jobs at once (removeOnComplete / removeOnFail), `
        + "so a held job whose first add reached Redis after all may run twice when it is added again after the outage (BullMQ recognises "
        + 'an id only while it keeps the job). Keep finished jobs for a while, e.g. removeOnComplete: { age: 3600 }.', name)
    }
    this.queues.set(name, queue)
    this.ctx.register()
    if (this.ctx.backend === 'redis') this.checkEviction()
    return queue
  }

  worker<D, R>(name: string, processor: Processor<D, R>, options?: Readonly<Partial<WorkerOptions>>): JobWorker<D, R> {
    checkQueueName(name)
    if (typeof processor !== 'function') {
      throw invalidArgument(`kit.worker('${name}', processor)`, `processor must be a function, e.g. async (job) => runScan(job.data); got ${show(processor)}`)
    }
    if (this.workers.has(name)) {
      throw invalidArgument(`kit.worker('${name}', processor)`, `queue '${name}' already has a worker in this kit; `
        + 'create one worker per queue, and run several jobs at once with { concurrency }')
    }
    const config = parseWorkerOptions(options, name)
    const queue = this.queue<D, R>(name)
    const worker = new JobWorker<D, R>(this.ctx, queue, processor, config)
    queue.attachLocal(worker.local)
    this.workers.set(name, worker as JobWorker)
    return worker
  }

  /** Every queue's counts and held jobs, for `GET /health`. */
  async summary(): Promise<Record<string, QueueHealth>> {
    const names = [...this.queues.keys()]
    const lines = await Promise.all(names.map((name) => (this.queues.get(name) as JobQueue).health()))
    const out: Record<string, QueueHealth> = {}
    names.forEach((name, i) => { out[name] = { ...(lines[i] as Omit<QueueHealth, 'workers'>), workers: this.workers.has(name) ? 1 : 0 } })
    return out
  }

  get size(): number {
    return this.queues.size
  }

  /** Workers stop taking jobs and finish what runs (bounded); queues add what they hold if Redis is there. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const flushBoundMs = Math.max(1000, 4 * this.ctx.settings.commandTimeoutMs)
    await Promise.all([
      ...[...this.workers.values()].map((worker) => worker.close()),
      ...[...this.queues.values()].map((queue) => queue.close(flushBoundMs)),
    ])
  }

  private resumed(): void {
    if (this.queues.size === 0) return
    this.checkEviction()
    for (const queue of this.queues.values()) void queue.flush()
  }

  /**
   * On a Cluster every key of a queue must hash to one slot: the queue's name is tagged (`{scan}`)
   * unless a tag is already in the name or the prefix.
   */
  private bullName(name: string, config: QueueConfig): string {
    if (this.ctx.client?.isCluster !== true) return name
    return HASH_TAG.test(name) || HASH_TAG.test(this.ctx.prefix + config.prefix) ? name : `{${name}}`
  }

  /** BullMQ refuses an ioredis client with a keyPrefix; say so in the kit's words. */
  private checkClient(): void {
    const client = this.ctx.client as { options?: { keyPrefix?: string; redisOptions?: { keyPrefix?: string } } } | undefined
    const keyPrefix = client?.options?.keyPrefix ?? client?.options?.redisOptions?.keyPrefix
    if (keyPrefix) {
      throw invalidOption('`redis`', `has the ioredis keyPrefix ${show(keyPrefix)}, which BullMQ cannot work with`,
        `Create the client without keyPrefix and pass createKit({ redis, keyPrefix: ${show(keyPrefix).replace(/`/g, "'")} }) instead.`)
    }
  }

  /** BullMQ needs Redis to keep its keys: an eviction policy can drop a waiting job. Checked once per kit. */
  private checkEviction(): void {
    if (this.evictionChecked) return
    this.evictionChecked = true
    void this.ctx.run({ redis: (client) => client.info('memory'), memory: () => '' }).then((info) => {
      const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1]
      if (policy === undefined || policy === 'noeviction') return
      this.ctx.log.warnOnce('ERR_KIT_QUEUE_EVICTION', `Redis runs with maxmemory-policy ${policy}: under memory pressure it may evict `
        + "a queue's keys, and jobs with them. Use maxmemory-policy noeviction for a Redis that holds queues (BullMQ's requirement).")
    }, () => { this.evictionChecked = false })
  }
}
