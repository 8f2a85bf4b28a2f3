/**
 * Jobs run from this process's memory: `onRedisDown: 'run-local'` during an outage, and every job
 * when Redis is disabled. The worker's own processor runs them at its concurrency, with the job's
 * attempts and backoff. Only this instance sees them, and they never reach Redis; the last 1000
 * are remembered for `getJob()`.
 */
import type { Backoff, JobInfo, JobProgress, Processor, WorkerJob } from './types.js'
import { parseData, type PendingJob } from './info.js'

const REMEMBERED = 1000

interface LocalRecord {
  job: PendingJob
  info: JobInfo
  timer?: NodeJS.Timeout
}

export interface LocalEvents {
  completed(id: string, result: unknown): void
  failed(id: string, error: Error): void
}

/** Milliseconds before retry number `attempt` (1 = the first retry), as BullMQ's built-in backoffs. */
export function backoffDelay(backoff: Backoff | undefined, attempt: number): number {
  if (backoff === undefined) return 0
  if (typeof backoff === 'number') return backoff
  return backoff.type === 'exponential' ? backoff.delay * 2 ** (attempt - 1) : backoff.delay
}

class LocalWorkerJob implements WorkerJob {
  readonly local = true
  constructor(private readonly record: LocalRecord, readonly data: unknown) {}
  get id(): string { return this.record.job.id }
  get name(): string { return this.record.job.name }
  get queue(): string { return this.record.info.queue }
  get attemptsMade(): number { return this.record.info.attemptsMade }
  updateProgress(progress: JobProgress): Promise<void> {
    this.record.info.progress = progress
    return Promise.resolve()
  }
  log(): Promise<void> {
    return Promise.resolve()
  }
}

export class LocalRuns {
  private readonly records = new Map<string, LocalRecord>()
  private readonly ready: LocalRecord[] = []
  private active = 0
  private closed = false
  private idleWaiters: (() => void)[] = []

  constructor(
    private readonly queue: string,
    private readonly processor: Processor,
    private readonly concurrency: number,
    private readonly events: LocalEvents,
  ) {}

  /** Jobs remembered (running, waiting or finished). */
  get size(): number {
    return this.records.size
  }

  get running(): number {
    return this.active
  }

  get(id: string): JobInfo | undefined {
    return this.records.get(id)?.info
  }

  /** Starts a job from memory; answers what add() returns. */
  start(job: PendingJob): JobInfo {
    const previous = this.records.get(job.id)
    if (previous && (previous.info.state === 'waiting' || previous.info.state === 'active' || previous.info.state === 'delayed')) {
      return { ...previous.info }
    }
    const info: JobInfo = {
      id: job.id, queue: this.queue, name: job.name, state: 'waiting', data: parseData(job.data), progress: 0, attemptsMade: 0,
      createdAt: new Date(job.at).toISOString(), local: true,
    }
    const record: LocalRecord = { job, info }
    this.records.delete(job.id)
    this.records.set(job.id, record)
    this.forgetOld()
    const delay = job.options.delay ?? 0
    if (delay > 0) this.later(record, delay)
    else this.enqueue(record)
    return { ...info }
  }

  /** Resolves when no local job is running (kit.close()); retries not yet due are dropped. */
  async close(): Promise<void> {
    this.closed = true
    for (const record of this.records.values()) clearTimeout(record.timer)
    this.ready.length = 0
    if (this.active === 0) return
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
  }

  private later(record: LocalRecord, ms: number): void {
    record.info.state = 'delayed'
    record.timer = setTimeout(() => { record.timer = undefined; this.enqueue(record) }, ms)
    record.timer.unref()
  }

  private enqueue(record: LocalRecord): void {
    if (this.closed) return
    record.info.state = 'waiting'
    this.ready.push(record)
    this.next()
  }

  private next(): void {
    while (this.active < this.concurrency && !this.closed) {
      const record = this.ready.shift()
      if (!record) return
      this.active++
      void this.run(record).finally(() => {
        this.active--
        if (this.active === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
        this.next()
      })
    }
  }

  private async run(record: LocalRecord): Promise<void> {
    const { info, job } = record
    info.state = 'active'
    info.processedAt = new Date().toISOString()
    try {
      const result = await this.processor(new LocalWorkerJob(record, parseData(job.data)))
      info.attemptsMade++
      info.state = 'completed'
      info.result = result
      delete info.failedReason
      info.finishedAt = new Date().toISOString()
      this.events.completed(job.id, result)
    } catch (thrown) {
      const error = thrown instanceof Error ? thrown : new Error(String(thrown))
      info.attemptsMade++
      info.failedReason = error.message
      this.events.failed(job.id, error)
      if (info.attemptsMade < (job.options.attempts ?? 1) && !this.closed) {
        this.later(record, backoffDelay(job.options.backoff, info.attemptsMade))
      } else {
        info.state = 'failed'
        info.finishedAt = new Date().toISOString()
      }
    }
  }

  /** Keeps the newest REMEMBERED records; finished ones go first. */
  private forgetOld(): void {
    if (this.records.size <= REMEMBERED) return
    for (const [id, record] of this.records) {
      if (this.records.size <= REMEMBERED) return
      if (record.info.state === 'completed' || record.info.state === 'failed') this.records.delete(id)
    }
  }
}
