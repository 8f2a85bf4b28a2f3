export { createKit, Kit } from './kit.js'
export { KeyValueClient } from './client.js'
export { ConnectionManager } from './core/manager.js'
export { MemoryStore } from './core/memory.js'
export { KitError, type KitErrorCode } from './errors.js'
export { redactUrl } from './config.js'
export type { CacheOptions, InvalidateTarget } from './cache/index.js'
export {
  FailoverRateLimitStore, type FailoverRateLimitStoreOptions, type RateLimitOptions, type RateLimitStoreOptions,
  type RedisDownPolicy,
} from './rate-limit.js'
export {
  FailoverSessionStore, type SessionCallback, type SessionMiddleware, type SessionOptions, type SessionSerializer,
  type SessionStoreOptions, type StoredSession,
} from './session.js'
export type {
  Backend, InDoubtWrite, JournalOptions, KitEvents, KitOptions, KitState, KitValue, Logger, MemoryOptions,
} from './types.js'
