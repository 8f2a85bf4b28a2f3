/**
 * Explicit options and the environment, parsed once into a fully-required config.
 * Everything wrong is reported here, at start-up, with the option's name and the fix.
 */
import type { ConnectionOptions } from 'node:tls'
import type { JournalOptions, KitOptions, Logger, MemoryOptions } from '../types.js'
import { invalidOption } from './errors.js'
import { Options } from './options.js'
import type { RedisClient } from './redis-types.js'
import { describeTopology, parseTls, parseTopology, type Topology } from './topology.js'

export interface KitConfig {
  enabled: boolean
  /** One server, a Cluster or a Sentinel-watched master (topology.ts). */
  topology: Topology
  /** The server's URL, for one server (not for a Cluster or Sentinel). */
  url: URL | undefined
  /** Where the kit connects, without secrets: safe for logs, errors and health output. */
  server: string
  /** TLS settings, or undefined for plain TCP. */
  tls: ConnectionOptions | undefined
  password: string | undefined
  username: string | undefined
  db: number
  keyPrefix: string
  commandTimeoutMs: number
  connectTimeoutMs: number
  healthTimeoutMs: number
  maxRetryDelayMs: number
  memory: MemoryOptions
  journal: JournalOptions
  logger: Logger | undefined
  redis: RedisClient | undefined
  /** The environment the kit reads (the `env` option, else `process.env`), for features' own variables. */
  env: Readonly<Record<string, string | undefined>>
  /** OpenTelemetry instruments and spans through @opentelemetry/api when it is installed. */
  telemetry: boolean
}

const KNOWN_OPTIONS: readonly (keyof KitOptions)[] = [
  'url', 'cluster', 'sentinel', 'tls', 'username', 'password', 'db', 'enabled', 'keyPrefix', 'commandTimeoutMs',
  'connectTimeoutMs', 'healthTimeoutMs', 'maxRetryDelayMs', 'memory', 'journal', 'logger', 'redis', 'env', 'telemetry',
]

const options = new Options('')

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

export function parseBoolean(value: boolean | string, name: string): boolean {
  if (typeof value === 'boolean') return value
  const normal = String(value).trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(normal)) return true
  if (['false', '0', 'no', 'off'].includes(normal)) return false
  throw invalidOption(name, `is \`${String(value)}\``, 'Use true/false, 1/0 or yes/no.')
}

function parseDb(value: number | string, name: string): number {
  const db = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : NaN
  if (!Number.isSafeInteger(db) || db < 0) {
    throw invalidOption(name, `is \`${String(value)}\``, 'Use a whole number from 0 (the default) upwards, e.g. REDIS_DB=1.')
  }
  return db
}

/** Replaces the password of a Redis URL with `***`. Non-URLs are returned as `<invalid url>`. */
export function redactUrl(raw: string | URL): string {
  try {
    const url = new URL(String(raw))
    if (url.password) url.password = '***'
    return url.toString()
  } catch {
    return '<invalid url>'
  }
}

function parseUrl(raw: string, source: string): URL {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw invalidOption(source, `is not a valid URL (${redactUrl(raw)})`,
      'Use redis://[:password@]host[:port][/db], or rediss:// for TLS.')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw invalidOption(source, `uses the scheme \`${url.protocol}\``, 'Use redis:// or rediss:// (TLS).')
  }
  if (!url.hostname) {
    throw invalidOption(source, 'has no host', 'Use redis://host:6379.')
  }
  return url
}

function parseLogger(value: Logger | false | undefined): Logger | undefined {
  if (value === false) return undefined
  if (value === undefined) return console
  for (const method of ['info', 'warn', 'error'] as const) {
    if (typeof value?.[method] !== 'function') {
      throw invalidOption('`logger`', `has no ${method}() method`, 'Pass console, a pino/winston logger, or false.')
    }
  }
  return value
}

export function resolveConfig(raw: Readonly<Partial<KitOptions>> = {}): KitConfig {
  const given = options.object<KitOptions>(raw, 'createKit(options)', 'createKit() or createKit({ url: ... })')
  options.known(given, KNOWN_OPTIONS)
  const env = given.env ?? process.env

  const enabled = given.enabled !== undefined
    ? parseBoolean(given.enabled, '`enabled`')
    : nonEmpty(env.ENABLE_REDIS) !== undefined ? parseBoolean(env.ENABLE_REDIS as string, 'ENABLE_REDIS') : true

  if (given.redis !== undefined && (given.url !== undefined || given.cluster !== undefined || given.sentinel !== undefined)) {
    throw invalidOption('`redis`', 'is given together with `url`, `cluster` or `sentinel`', 'Pass either your own client or where to connect, not both.')
  }
  const topology = parseTopology(given, env, parseUrl)
  const url = topology.kind === 'standalone' ? topology.url : undefined
  const fromUrl = (part: string): string | undefined => (part ? decodeURIComponent(part) : undefined)
  const password = given.password ?? nonEmpty(env.REDIS_PASSWORD) ?? fromUrl(url?.password ?? '')
  if (password !== undefined && typeof password !== 'string') {
    throw invalidOption('`password`', 'must be a string', 'Pass the password as text or set REDIS_PASSWORD.')
  }
  const username = options.string(given.username, 'username', '', 'Pass the ACL user name as text.') || nonEmpty(env.REDIS_USERNAME) || fromUrl(url?.username ?? '')
  const urlDb = url?.pathname.replace(/^\//, '') ?? ''
  const db = given.db !== undefined ? parseDb(given.db, '`db`')
    : nonEmpty(env.REDIS_DB) !== undefined ? parseDb(env.REDIS_DB as string, 'REDIS_DB')
      : urlDb ? parseDb(urlDb, 'the database in the URL') : 0
  if (topology.kind === 'cluster' && db !== 0) {
    throw invalidOption(given.db !== undefined ? '`db`' : 'REDIS_DB', `is ${db} with a Redis Cluster`, 'A Cluster has database 0 only: remove it, and use `keyPrefix` to separate apps.')
  }
  const tls = parseTls(given.tls, env, url?.protocol === 'rediss:', parseBoolean)
  const server = describeTopology(topology, tls !== undefined, (u) => {
    const safe = new URL(u.toString())
    if (password !== undefined || safe.password) safe.password = '***'
    return redactUrl(safe)
  })

  const keyPrefix = options.string(given.keyPrefix, 'keyPrefix', '', "Use a string, e.g. 'myapp:'.")
  const memory = given.memory ?? {}
  options.known(memory, ['maxEntries', 'maxBytes'], {}, 'memory.')
  const journal = given.journal ?? {}
  options.known(journal, ['maxEntries', 'maxBytes'], {}, 'journal.')

  if (given.redis !== undefined && (typeof given.redis !== 'object' || typeof given.redis.call !== 'function')) {
    throw invalidOption('`redis`', 'is not an ioredis client', 'Pass new Redis(...) from ioredis, or use `url`.')
  }

  return {
    enabled,
    topology,
    url,
    server,
    tls,
    password,
    username,
    db,
    keyPrefix,
    commandTimeoutMs: options.milliseconds(given.commandTimeoutMs, 'commandTimeoutMs', 300),
    connectTimeoutMs: options.milliseconds(given.connectTimeoutMs, 'connectTimeoutMs', 2000),
    healthTimeoutMs: options.milliseconds(given.healthTimeoutMs, 'healthTimeoutMs', 1000),
    maxRetryDelayMs: options.milliseconds(given.maxRetryDelayMs, 'maxRetryDelayMs', 500),
    memory: {
      maxEntries: options.integer(memory.maxEntries, 'memory.maxEntries', 10_000),
      maxBytes: options.integer(memory.maxBytes, 'memory.maxBytes', 32 * 1024 * 1024),
    },
    journal: {
      maxEntries: options.integer(journal.maxEntries, 'journal.maxEntries', 10_000),
      maxBytes: options.integer(journal.maxBytes, 'journal.maxBytes', 64 * 1024 * 1024),
    },
    logger: parseLogger(given.logger),
    redis: given.redis,
    env,
    telemetry: options.boolean(given.telemetry, 'telemetry', true),
  }
}

/** Removes a secret from any text before it leaves the kit (errors, logs, health output). */
export function redactText(text: string, config: Pick<KitConfig, 'password'> & { topology?: Topology }): string {
  let out = text.replace(/(rediss?:\/\/[^:@/\s]*:)[^@\s]+@/g, '$1***@')
  const secrets = [config.password, config.topology?.kind === 'sentinel' ? config.topology.password : undefined]
  for (const secret of secrets) if (secret) out = out.split(secret).join('***')
  return out
}

/** An error safe to log or show: its message without secrets (the same error when there were none). */
export function redactError(error: unknown, config: Pick<KitConfig, 'password'>): Error {
  const source = error instanceof Error ? error : new Error(String(error))
  const message = redactText(source.message, config)
  if (message === source.message) return source
  const copy = new Error(message)
  copy.name = source.name
  return copy
}
