import type { RedisClient } from './core/redis-types.js'

/** Where the kit is: see "States and events" in the README. */
export type KitState = 'disabled' | 'connecting' | 'ready' | 'degraded'

/** Which store serves a feature right now. */
export type Backend = 'redis' | 'memory'

/** Anything with console-like methods; `console` works. */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}

export interface MemoryOptions {
  /**
   * Most entries one feature keeps in memory; the least recently used go first.
   * Defaults to `10000`.
   */
  maxEntries: number
  /**
   * Most bytes (keys plus values, approximate) one feature keeps in memory.
   * Defaults to `33554432` (32 MiB).
   */
  maxBytes: number
}

export interface JournalOptions {
  /**
   * Most distinct keys one feature may have waiting for replay after an outage. Writes to
   * further keys still succeed in memory but are not replayed; the kit warns once per outage.
   * Defaults to `10000`.
   */
  maxEntries: number
  /**
   * Most bytes (keys plus values, counted like `memory.maxBytes`) one feature may have waiting
   * for replay. Defaults to `67108864` (64 MiB).
   */
  maxBytes: number
}

export interface KitOptions {
  /**
   * Redis URL; `rediss://` turns TLS on. A password in the URL is used and redacted in all output.
   * Defaults to `REDIS_URL`, else `redis://localhost:6379`.
   */
  url: string
  /** Redis password (overrides one in the URL). Defaults to `REDIS_PASSWORD`, else none. */
  password: string
  /** Database index. Defaults to `REDIS_DB`, else the URL's path (`/2`), else `0`. */
  db: number
  /**
   * `false` runs every feature from memory and never connects. Strings from the environment
   * accept true/false/1/0/yes/no in any case. Defaults to `ENABLE_REDIS`, else `true`.
   */
  enabled: boolean | string
  /** Prefix put before every key the kit writes, e.g. `myapp:`. Defaults to `''`. */
  keyPrefix: string
  /**
   * The longest any call waits on Redis before it is answered from memory and the kit
   * switches to `degraded`. Defaults to `300`.
   */
  commandTimeoutMs: number
  /** The longest the first connection attempt may take before `ready()` settles. Defaults to `2000`. */
  connectTimeoutMs: number
  /** Timeout of the live PING behind `GET /health/redis`. Defaults to `1000`. */
  healthTimeoutMs: number
  /** Longest pause between reconnection probes while degraded (jittered). Defaults to `500`. */
  maxRetryDelayMs: number
  /** Bounds of the in-memory twin, per feature. */
  memory: Partial<MemoryOptions>
  /** Bounds of the outage journal. */
  journal: Partial<JournalOptions>
  /** Where state changes are logged (one line each), or `false` for silence. Defaults to `console`. */
  logger: Logger | false
  /**
   * A ready ioredis client (`Redis`, or later `Cluster`) to use instead of one built from `url`.
   * The kit does not change its settings and warns once if they would let requests hang.
   * Defaults to none.
   */
  redis: RedisClient
  /** Where environment variables are read from. Defaults to `process.env`. */
  env: Readonly<Record<string, string | undefined>>
}

/** `kit.client` values: strings and numbers round-trip as themselves, the rest through JSON. */
export type KitValue = string | number | boolean | null | KitValue[] | { [key: string]: KitValue }

/**
 * A non-idempotent write (an increment, a rate-limit hit) that was sent to Redis when the
 * connection failed: Redis may or may not have applied it, and resending could count it twice.
 */
export interface InDoubtWrite {
  /** `client`, `rate-limit`, … */
  feature: string
  op: 'incrby' | 'hits'
  /** The full Redis key. */
  key: string
  amount: number
}

export interface KitEvents {
  stateChange: [to: KitState, from: KitState]
  degraded: [error: Error]
  recovered: []
  inDoubt: [write: InDoubtWrite]
}
