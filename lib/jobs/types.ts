/**
 * The job queue's public shapes: `kit.queue()` / `kit.worker()` options, what `add()` and
 * `getJob()` answer, and what a processor receives. BullMQ does the work underneath; these types
 * keep its names where an option passes straight through (`attempts`, `backoff`, `removeOnComplete` …).
 */

/**
 * What `add()` does while Redis cannot take a job (down, hung, or not reached yet):
 * - `'hold'`: keep it in this process's bounded outbox and add it to BullMQ, with the same id and
 *   in order, once Redis is back; `add()` answers at once with `state: 'held'`.
 * - `'run-local'`: this process's own worker for the queue runs it from memory at once (seen by
 *   this instance only; never added to Redis).
 * - `'reject'`: `add()` throws a `KitError` with code `ERR_KIT_QUEUE_UNAVAILABLE` (answer 503).
 */
export type QueueDownPolicy = 'hold' | 'run-local' | 'reject'

/** How many finished jobs BullMQ keeps, and for how long (it trims when a later job finishes). */
export interface KeepJobs {
  /** Seconds a finished job is kept. */
  age?: number
  /** Most finished jobs kept. */
  count?: number
}

/** Pause between attempts: milliseconds, or BullMQ's `{ type, delay }` (exponential doubles it each time). */
export type Backoff = number | { type: 'fixed' | 'exponential'; delay: number; jitter?: number }

/** Per-job settings, passed to BullMQ as they are. As queue options they are every job's defaults. */
export interface JobSettings {
  /** Runs a failing job this many times in all. Defaults to `1`. */
  attempts: number
  /** Pause before each retry. Defaults to none (retry at once). */
  backoff: Backoff
  /**
   * Completed jobs kept (their result stays readable with `getJob()`, and an `add()` with a kept
   * job's id does not run it again while it is being retried after an outage): `true` removes a
   * job as soon as it completes, `false` keeps every one, a number keeps that many.
   * Defaults to `{ age: 86400, count: 1000 }` (a day, at most 1000).
   */
  removeOnComplete: boolean | number | KeepJobs
  /** Failed jobs kept, as `removeOnComplete`. Defaults to `{ age: 604800, count: 5000 }` (a week, at most 5000). */
  removeOnFail: boolean | number | KeepJobs
}

/** `queue.add(name, data, options)`. */
export interface AddOptions extends JobSettings {
  /**
   * The job's id: its key is `<keyPrefix>job:<queue>:<jobId>`. While a job with this id is waiting,
   * delayed or active, `add()` returns that job instead of adding another (one job per id at a
   * time); once it finished, `add()` replaces it with a new one. Not a whole number, and no `:`
   * (BullMQ's rules). Defaults to a random UUID.
   */
  jobId: string
  /** Milliseconds before the job may run. Defaults to `0`. */
  delay: number
  /** 1 (highest) to 2097152; jobs with a priority run before those without. Defaults to none. */
  priority: number
  /** Runs this job before the others waiting. Defaults to `false`. */
  lifo: boolean
}

/** `kit.queue(name, options)`: the queue's own settings, and defaults for every job it adds. */
export interface QueueOptions extends JobSettings {
  /** What `add()` does while Redis cannot take a job. Defaults to `'hold'`. */
  onRedisDown: QueueDownPolicy
  /**
   * With `'hold'`: most jobs held in this process while Redis is away; past it `add()` throws
   * `ERR_KIT_QUEUE_UNAVAILABLE` and the kit warns once (`ERR_KIT_QUEUE_FULL`). Defaults to `1000`.
   */
  maxHeld: number
  /**
   * BullMQ's key prefix, after the kit's `keyPrefix`: keys are `<keyPrefix><prefix>:<queue>:…`.
   * A worker in another process must use the same. Defaults to `'job'`.
   */
  prefix: string
}

/** `kit.worker(name, processor, options)`. */
export interface WorkerOptions {
  /** Jobs this process runs at once. Defaults to `1`. */
  concurrency: number
  /**
   * Milliseconds a running job's lock lasts (renewed at half of it while the job runs). A job whose
   * worker died is taken over once its lock expired and the next stall check ran. Defaults to `30000`.
   */
  lockDuration: number
  /** Milliseconds between checks for jobs whose worker died (stalled jobs). Defaults to `30000`. */
  stalledInterval: number
  /** Times a job may stall (its worker die) before it fails. Defaults to `1`. */
  maxStalledCount: number
  /**
   * `kit.close()` waits this long for running jobs to finish; past it the worker's connections are
   * closed and its jobs are left to stalled-job recovery by another worker. Defaults to `10000`.
   */
  closeTimeoutMs: number
}

/**
 * Where a job is. BullMQ's states, plus `'held'`: in this process's outbox, waiting for Redis.
 * `'unknown'` is a job BullMQ no longer knows.
 */
export type JobState =
  | 'held' | 'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed' | 'waiting-children' | 'unknown'

/** A job's progress, as the processor last reported it (`job.updateProgress()`). */
export type JobProgress = number | string | boolean | object

/** A job as `add()` and `getJob()` answer it: plain data, ready for `res.json()`. */
export interface JobInfo<D = unknown, R = unknown> {
  id: string
  /** The queue's name, as given to `kit.queue()`. */
  queue: string
  name: string
  state: JobState
  data: D
  /** `0` until the processor reports progress. */
  progress: JobProgress
  /** Attempts finished so far: the failed ones, and the one that completed. */
  attemptsMade: number
  /** What the processor returned (completed jobs). */
  result?: R
  /** Why the last attempt failed (failed jobs, and jobs waiting for a retry). */
  failedReason?: string
  /** When `add()` was called (ISO 8601). */
  createdAt: string
  processedAt?: string
  finishedAt?: string
  /** Run from this process's memory during an outage (`'run-local'`): other instances never see it. */
  local?: true
}

/** The job a processor receives. */
export interface WorkerJob<D = unknown> {
  readonly id: string
  readonly name: string
  readonly queue: string
  readonly data: D
  /** Attempts finished before this one (0 on the first run). */
  readonly attemptsMade: number
  /** True when this run comes from memory during an outage (`'run-local'`, or Redis disabled). */
  readonly local: boolean
  /** Stores progress where `getJob()` and the dashboard read it. */
  updateProgress(progress: JobProgress): Promise<void>
  /** Adds a line to the job's log (shown by the dashboard). */
  log(line: string): Promise<void>
}

/** Runs one job; what it returns (JSON) is the job's result, what it throws fails the attempt. */
export type Processor<D = unknown, R = unknown> = (job: WorkerJob<D>) => Promise<R> | R

/** One queue's line in `GET /health`: BullMQ's counts (null while Redis cannot answer) and held jobs. */
export interface QueueHealth {
  waiting: number | null
  active: number | null
  delayed: number | null
  failed: number | null
  completed: number | null
  /** Jobs in this process's outbox, waiting for Redis. */
  held: number
  /** Jobs this process ran or runs from memory (`'run-local'`) and still remembers. */
  local: number
  /** Workers of this kit for the queue. */
  workers: number
}

export interface JobWorkerEvents<R = unknown> {
  /** A job finished; `local` when it ran from memory. */
  completed: [id: string, result: R, local: boolean]
  /** An attempt failed (it may be retried). */
  failed: [id: string, error: Error, local: boolean]
}
