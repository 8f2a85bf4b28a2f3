/** The package entry: the public surface only (no connection manager, no memory twin). */
export { createKit, type Kit } from './kit.js'
export type { KeyValueClient } from './client/index.js'
export { KitError, type KitErrorCode } from './core/errors.js'
export { redactUrl } from './core/config.js'
export type { CacheOptions, InvalidateTarget } from './cache/index.js'
export type { KitStats, MetricsRouterOptions, PromRegistry } from './metrics/index.js'
export type {
  AddOptions, Backoff, JobInfo, JobProgress, JobQueue, JobSettings, JobState, JobWorker, JobWorkerEvents, KeepJobs, Processor,
  QueueDownPolicy, QueueHealth, QueueOptions, WorkerJob, WorkerOptions,
} from './jobs/index.js'
export type {
  FailoverRateLimitStore, FailoverRateLimitStoreOptions, RateLimitOptions, RateLimitStoreOptions, RedisDownPolicy,
} from './rate-limit/index.js'
export type {
  FailoverSessionStore, SessionCallback, SessionMiddleware, SessionOptions, SessionSerializer, SessionStoreOptions,
  StoredSession,
} from './session/index.js'
export type {
  Backend, InDoubtWrite, JournalOptions, KitEvents, KitOptions, KitState, KitValue, Logger, MemoryOptions,
} from './types.js'
