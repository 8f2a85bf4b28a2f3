/**
 * Builds the kit's own ioredis client with fail-fast settings, and inspects a user-supplied one.
 * The ioredis defaults make requests hang during an outage (offline queue, 20 retries, no command
 * timeout) and resend in-flight commands after a reconnect, which would double-apply increments
 * that the outage journal also replays. Every one of those is switched off here.
 */
import { isIP } from 'node:net'
import { Redis, type RedisOptions } from 'ioredis'
import type { KitConfig } from './config.js'
import type { RedisClient } from './redis-types.js'

/** Capped exponential backoff with jitter, so a fleet does not reconnect in lock-step. */
export function retryDelay(attempt: number, maxDelayMs: number): number {
  const exponential = Math.min(maxDelayMs, 25 * 2 ** Math.min(attempt, 16))
  return Math.max(10, Math.round(exponential * (0.5 + Math.random() * 0.5)))
}

export function createRedisClient(config: KitConfig, overrides: Partial<RedisOptions> = {}): Redis {
  const { url } = config
  return new Redis({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 6379,
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
    db: config.db,
    // SNI takes a host name, never an IP address (RFC 6066).
    ...(config.tls ? { tls: isIP(url.hostname.replace(/^\[|\]$/g, '')) ? {} : { servername: url.hostname } } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // Commands issued in one event-loop turn leave in one socket write: under concurrent requests
    // the write syscall, not Redis, is the client's main cost.
    enableAutoPipelining: true,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: (times) => retryDelay(times, config.maxRetryDelayMs),
    connectionName: 'express-redis-kit',
    // ioredis arms this timer even for a socket that already died (ECONNREFUSED) and never
    // clears it, so close() would keep the process alive for the default 2 s.
    disconnectTimeout: 100,
    ...overrides,
  })
}

interface InspectableOptions {
  enableOfflineQueue?: boolean
  maxRetriesPerRequest?: number | null
  commandTimeout?: number
  autoResendUnfulfilledCommands?: boolean
  redisOptions?: InspectableOptions
}

/** The settings of a user's client that would let requests hang or writes run twice. */
export function riskySettings(client: RedisClient): { risks: string[]; commandTimeout: number | undefined } {
  const options = (client as unknown as { options?: InspectableOptions }).options ?? {}
  const node = options.redisOptions ?? options
  const risks: string[] = []
  if (options.enableOfflineQueue !== false) risks.push('enableOfflineQueue is on (commands queue while Redis is down and run later)')
  const retries = node.maxRetriesPerRequest
  if (retries === null || retries === undefined || retries > 1) risks.push(`maxRetriesPerRequest is ${String(retries ?? 20)}`)
  if (!node.commandTimeout) risks.push('commandTimeout is not set')
  if (node.autoResendUnfulfilledCommands !== false) risks.push('autoResendUnfulfilledCommands is on (in-flight writes may run twice)')
  return { risks, commandTimeout: node.commandTimeout }
}
