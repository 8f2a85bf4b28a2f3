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

/** The start-up nodes of a Redis Cluster; the kit discovers the rest. */
export interface ClusterOptionsInput {
  /** `'host:port'` strings or `{ host, port }`. */
  nodes: readonly (string | { host: string; port: number })[]
}

/** A master watched by Redis Sentinel: the kit asks the sentinels where it is, and follows failovers. */
export interface SentinelOptionsInput {
  /** The sentinels, `'host:port'` strings or `{ host, port }` (port 26379 when left out). */
  nodes: readonly (string | { host: string; port: number })[]
  /** The name the sentinels monitor the master under (`sentinel monitor <name> …`). */
  name: string
  /** The sentinels' own password (`requirepass` in sentinel.conf). Defaults to none. */
  password?: string
  /** The sentinels' ACL user. Defaults to none. */
  username?: string
}

/** TLS to Redis (and to the sentinels). PEM text or Buffers. */
export interface TlsOptionsInput {
  /** The CA(s) that signed the server certificate, for a private CA. Defaults to Node's trusted CAs. */
  ca?: string | Buffer | readonly (string | Buffer)[]
  /** Client certificate, for servers that require one (mutual TLS, `tls-auth-clients yes`). */
  cert?: string | Buffer | readonly (string | Buffer)[]
  /** The client certificate's private key. */
  key?: string | Buffer | readonly (string | Buffer)[]
  passphrase?: string
  /** The host name the server certificate was issued for, when it differs from the one connected to. */
  servername?: string
  /** Verify the server certificate. Defaults to `true`; `false` is for tests only. */
  rejectUnauthorized?: boolean
}

export interface KitOptions {
  /**
   * Redis URL; `rediss://` turns TLS on. A password in the URL is used and redacted in all output.
   * Defaults to `REDIS_URL`, else `redis://localhost:6379` (when no cluster or sentinel is configured).
   */
  url: string
  /** A Redis Cluster instead of one server. Defaults to `REDIS_CLUSTER_NODES`, else none. */
  cluster: ClusterOptionsInput
  /**
   * A Sentinel-watched master instead of one server. Defaults to `REDIS_SENTINELS` with
   * `REDIS_SENTINEL_NAME`, `REDIS_SENTINEL_PASSWORD`, `REDIS_SENTINEL_USERNAME`, else none.
   */
  sentinel: SentinelOptionsInput
  /**
   * TLS: `true`, or the CA / client certificate to use. Defaults to on for `rediss://` or when
   * `REDIS_TLS` or a `REDIS_TLS_CA_FILE` / `_CERT_FILE` / `_KEY_FILE` / `_SERVERNAME` is set, else off.
   */
  tls: boolean | TlsOptionsInput
  /** ACL user name. Defaults to `REDIS_USERNAME`, else the URL's user, else none (`default`). */
  username: string
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
  /**
   * OpenTelemetry: when `@opentelemetry/api` is installed, the kit's metrics are observable
   * instruments on the app's global meter provider (register it before `createKit()`) and its
   * replays, cache fills and doctor checks are spans on the app's tracer provider; without a
   * provider, both are no-ops. `false` leaves OpenTelemetry alone. Defaults to `true`.
   */
  telemetry: boolean
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
