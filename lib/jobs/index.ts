/**
 * `kit.queue()` / `kit.worker()`: a job queue on BullMQ that keeps taking jobs while Redis is down
 * (held, run locally or refused, per queue) and adds held ones exactly once when it is back.
 */
export { JobsRuntime } from './runtime.js'
export type { JobQueue } from './queue.js'
export type { JobWorker } from './worker.js'
export type {
  AddOptions, Backoff, JobInfo, JobProgress, JobSettings, JobState, JobWorkerEvents, KeepJobs, Processor, QueueDownPolicy, QueueHealth,
  QueueOptions, WorkerJob, WorkerOptions,
} from './types.js'
