/**
 * Explicit options and the environment, parsed once into a fully-required config.
 * Everything wrong is reported here, at start-up, with the option's name and the fix.
 */
import { closestName, invalidOption } from './errors.js'
import type { JournalOptions, KitOptions, Logger, MemoryOptions } from '../types.js'
import type { RedisClient } from './redis-types.js'

export interface KitConfig {
  enabled: boolean
  url: URL
  /** The URL with any password replaced by `***`: safe for logs, errors and health output. */
  redactedUrl: string
  tls: boolean
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
}

const DEFAULT_URL = 'redis://localhost:6379'
const KNOWN_OPTIONS: readonly (keyof KitOptions)[] = [
  'url', 'password', 'db', 'enabled', 'keyPrefix', 'commandTimeoutMs', 'connectTimeoutMs',
  'healthTimeoutMs', 'maxRetryDelayMs', 'memory', 'journal', 'logger', 'redis', 'env',
]

function rejectUnknown(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue
    const guess = closestName(name, known)
    throw invalidOption(`${where}\`${name}\``, 'is not an option',
      guess ? `Did you mean \`${guess}\`?` : `Known options: ${known.join(', ')}.`)
  }
}

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

/** Node clamps longer timers to 1 ms, so a longer timeout would silently become no wait at all. */
const MAX_TIMER_MS = 2 ** 31 - 1

function duration(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw invalidOption(name, `is \`${String(value)}\``, `Use a positive number of milliseconds up to ${MAX_TIMER_MS} (default ${fallback}).`)
  }
  return value
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw invalidOption(name, `is \`${String(value)}\``, `Use a whole number of at least 1 (default ${fallback}).`)
  }
  return value
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

export function resolveConfig(options: Readonly<Partial<KitOptions>> = {}): KitConfig {
  if (typeof options !== 'object' || options === null) {
    throw invalidOption('createKit(options)', 'must be an object', 'Call createKit() or createKit({ url: ... }).')
  }
  rejectUnknown(options, KNOWN_OPTIONS, '')
  const env = options.env ?? process.env

  const enabled = options.enabled !== undefined
    ? parseBoolean(options.enabled, '`enabled`')
    : nonEmpty(env.ENABLE_REDIS) !== undefined ? parseBoolean(env.ENABLE_REDIS as string, 'ENABLE_REDIS') : true

  const urlSource = options.url !== undefined ? '`url`' : nonEmpty(env.REDIS_URL) ? 'REDIS_URL' : 'default url'
  const rawUrl = options.url ?? nonEmpty(env.REDIS_URL) ?? DEFAULT_URL
  if (typeof rawUrl !== 'string') throw invalidOption('`url`', 'must be a string', 'Use redis://host:6379.')
  const url = parseUrl(rawUrl, urlSource)

  const password = options.password ?? nonEmpty(env.REDIS_PASSWORD)
    ?? (url.password ? decodeURIComponent(url.password) : undefined)
  if (password !== undefined && typeof password !== 'string') {
    throw invalidOption('`password`', 'must be a string', 'Pass the password as text or set REDIS_PASSWORD.')
  }
  const urlDb = url.pathname.replace(/^\//, '')
  const db = options.db !== undefined ? parseDb(options.db, '`db`')
    : nonEmpty(env.REDIS_DB) !== undefined ? parseDb(env.REDIS_DB as string, 'REDIS_DB')
      : urlDb ? parseDb(urlDb, `the database in ${urlSource}`) : 0

  const keyPrefix = options.keyPrefix ?? ''
  if (typeof keyPrefix !== 'string') throw invalidOption('`keyPrefix`', 'must be a string', "Use e.g. 'myapp:'.")

  const memory = options.memory ?? {}
  rejectUnknown(memory, ['maxEntries', 'maxBytes'], 'memory.')
  const journal = options.journal ?? {}
  rejectUnknown(journal, ['maxEntries', 'maxBytes'], 'journal.')

  if (options.redis !== undefined && (typeof options.redis !== 'object' || typeof options.redis.call !== 'function')) {
    throw invalidOption('`redis`', 'is not an ioredis client', 'Pass new Redis(...) from ioredis, or use `url`.')
  }

  const safeUrl = new URL(url.toString())
  if (password !== undefined) safeUrl.password = '***'
  return {
    enabled,
    url,
    redactedUrl: redactUrl(safeUrl),
    tls: url.protocol === 'rediss:',
    password,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    db,
    keyPrefix,
    commandTimeoutMs: duration(options.commandTimeoutMs, 300, '`commandTimeoutMs`'),
    connectTimeoutMs: duration(options.connectTimeoutMs, 2000, '`connectTimeoutMs`'),
    healthTimeoutMs: duration(options.healthTimeoutMs, 1000, '`healthTimeoutMs`'),
    maxRetryDelayMs: duration(options.maxRetryDelayMs, 500, '`maxRetryDelayMs`'),
    memory: {
      maxEntries: positiveInteger(memory.maxEntries, 10_000, '`memory.maxEntries`'),
      maxBytes: positiveInteger(memory.maxBytes, 32 * 1024 * 1024, '`memory.maxBytes`'),
    },
    journal: {
      maxEntries: positiveInteger(journal.maxEntries, 10_000, '`journal.maxEntries`'),
      maxBytes: positiveInteger(journal.maxBytes, 64 * 1024 * 1024, '`journal.maxBytes`'),
    },
    logger: parseLogger(options.logger),
    redis: options.redis,
    env,
  }
}

/** Removes a secret from any text before it leaves the kit (errors, logs, health output). */
export function redactText(text: string, config: Pick<KitConfig, 'password'>): string {
  let out = text.replace(/(rediss?:\/\/[^:@/\s]*:)[^@\s]+@/g, '$1***@')
  if (config.password) out = out.split(config.password).join('***')
  return out
}
