/**
 * Builds the kit's own ioredis client with fail-fast settings, and inspects a user-supplied one.
 * The ioredis defaults make requests hang during an outage (offline queue, 20 retries) and resend
 * in-flight commands after a reconnect, which would double-apply increments that the outage
 * journal also replays. Every one of those is switched off here.
 *
 * No ioredis `commandTimeout`: the manager's watchdog bounds every call itself, from the moment
 * it is made (ioredis' timer starts only once a queued command is written), and keeps waiting for
 * the real reply in the background, so the kit learns whether a call it gave up on ran.
 */
import { isIP } from 'node:net'
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { KitConfig } from './config.js'
import { isCluster, type RedisClient } from './redis-types.js'

/** Capped exponential backoff with jitter, so a fleet does not reconnect in lock-step. */
export function retryDelay(attempt: number, maxDelayMs: number): number {
  const exponential = Math.min(maxDelayMs, 25 * 2 ** Math.min(attempt, 16))
  return Math.max(10, Math.round(exponential * (0.5 + Math.random() * 0.5)))
}

/** The fail-fast settings every connection of the kit gets (one server, each Cluster node). */
function nodeOptions(config: KitConfig): RedisOptions {
  return {
    ...(config.username !== undefined ? { username: config.username } : {}),
    ...(config.password !== undefined ? { password: config.password } : {}),
    ...(config.tls !== undefined ? { tls: config.tls } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: config.connectTimeoutMs,
    connectionName: 'express-redis-kit',
    // ioredis arms this timer even for a socket that already died (ECONNREFUSED) and never
    // clears it, so close() would keep the process alive for the default 2 s.
    disconnectTimeout: 100,
  }
}

/** TLS for one host: SNI takes a host name, never an IP address (RFC 6066). */
function tlsFor(config: KitConfig, host: string): RedisOptions['tls'] {
  if (config.tls === undefined) return undefined
  return config.tls.servername !== undefined || isIP(host) !== 0 ? config.tls : { ...config.tls, servername: host }
}

interface QuietableClient {
  listenerCount(event: string): number
  on(event: string, listener: () => void): unknown
}

/**
 * ioredis' failover detector subscribes to each sentinel on clients of its own, without an 'error'
 * listener: a sentinel that dies makes ioredis print "Unhandled error event" at every reconnection
 * attempt of that client, for as long as the sentinel is down. Reconnecting is the detector's
 * business (a dead sentinel is normal in a quorum); the kit only keeps it quiet.
 */
function quietFailoverDetector(client: Redis): void {
  const connector = (client as unknown as { connector?: { failoverDetector?: { sentinels?: { client?: QuietableClient }[] } | null } }).connector
  for (const { client: sentinel } of connector?.failoverDetector?.sentinels ?? []) {
    if (sentinel && sentinel.listenerCount('error') === 0) sentinel.on('error', () => {})
  }
}

/** `overrides` win over the kit's settings for every connection (each node of a Cluster); `clusterOverrides` for a Cluster client itself. */
export function createRedisClient(config: KitConfig, overrides: Partial<RedisOptions> = {}, clusterOverrides: Partial<ClusterOptions> = {}): RedisClient {
  const { topology } = config
  // Commands issued in one event-loop turn leave in one socket write: under concurrent requests
  // the write syscall, not Redis, is the client's main cost.
  const shared = { ...nodeOptions(config), enableAutoPipelining: true, lazyConnect: true, ...overrides }
  if (topology.kind === 'cluster') {
    return new Cluster(topology.nodes, {
      redisOptions: { ...nodeOptions(config), ...overrides },
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      lazyConnect: true,
      // MOVED, ASK, TRYAGAIN and CLUSTERDOWN are answers Redis gives before running a command, so
      // retrying them is safe; a command lost with its connection is not retried (it may have run).
      retryDelayOnFailover: 0,
      // A slot map refresh asks one node after another: one that hangs (a master frozen while its
      // replica takes over) must cost no more than any call, not ioredis' 1 s.
      slotsRefreshTimeout: config.commandTimeoutMs,
      clusterRetryStrategy: (times) => retryDelay(times, config.maxRetryDelayMs),
      ...(config.tls !== undefined ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
      ...clusterOverrides,
    })
  }
  if (topology.kind === 'sentinel') {
    const client = new Redis({
      ...shared,
      sentinels: topology.nodes,
      name: topology.name,
      db: config.db,
      ...(topology.password !== undefined ? { sentinelPassword: topology.password } : {}),
      ...(topology.username !== undefined ? { sentinelUsername: topology.username } : {}),
      ...(config.tls !== undefined ? { enableTLSForSentinelMode: true, sentinelTLS: config.tls } : {}),
      // Follows the sentinels' +switch-master announcements instead of waiting for the old
      // master's connection to fail.
      failoverDetector: true,
      sentinelRetryStrategy: (times) => retryDelay(times, config.maxRetryDelayMs),
      // A sentinel that accepts the connection but never answers (hung) must not stall the lookup:
      // ioredis sets no timeout on its SENTINEL queries by default; past this it asks the next one.
      sentinelCommandTimeout: config.commandTimeoutMs,
      retryStrategy: (times) => retryDelay(times, config.maxRetryDelayMs),
      ...overrides,
    })
    // The detector is made when the connection to the master opens, before ioredis says 'connect'.
    client.on('connect', () => quietFailoverDetector(client))
    return client
  }
  const { url } = topology
  const host = url.hostname.replace(/^\[|\]$/g, '')
  return new Redis({
    ...shared,
    host,
    port: url.port ? Number(url.port) : 6379,
    db: config.db,
    ...(config.tls !== undefined ? { tls: tlsFor(config, host) } : {}),
    retryStrategy: (times) => retryDelay(times, config.maxRetryDelayMs),
    ...overrides,
  })
}

interface InspectableOptions {
  enableOfflineQueue?: boolean
  maxRetriesPerRequest?: number | null
  autoResendUnfulfilledCommands?: boolean
  redisOptions?: InspectableOptions
  host?: string
  port?: number
  path?: string
  db?: number
  tls?: unknown
  name?: string
  sentinels?: { host?: string; port?: number }[]
}

/** The settings of a user's client that would let requests hang or writes run twice. */
export function riskySettings(client: RedisClient): { risks: string[] } {
  const options = (client as unknown as { options?: InspectableOptions }).options ?? {}
  const node = options.redisOptions ?? options
  const risks: string[] = []
  if (options.enableOfflineQueue !== false) risks.push('enableOfflineQueue is on (commands queue while Redis is down and run later)')
  const retries = node.maxRetriesPerRequest
  if (retries === null || retries === undefined || retries > 1) risks.push(`maxRetriesPerRequest is ${String(retries ?? 20)}`)
  if (node.autoResendUnfulfilledCommands !== false) risks.push('autoResendUnfulfilledCommands is on (in-flight writes may run twice)')
  return { risks }
}

/** The one warning about a user-supplied client whose settings would let calls hang or writes run twice. */
export function settingsWarning(client: RedisClient): string | undefined {
  const { risks } = riskySettings(client)
  if (risks.length === 0) return undefined
  return `the ioredis client passed as \`redis\` has ${risks.join('; ')}. `
    + 'The kit bounds every call by commandTimeoutMs itself, but for fail-fast behaviour create it with '
    + '{ enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false }.'
}

/** Where a user-supplied client points, without credentials: for logs and health output. */
export function describeClient(client: RedisClient): string {
  if (isCluster(client)) {
    const nodes = client.nodes('all').map((node) => `${node.options.host ?? '?'}:${node.options.port ?? '?'}`)
    const startup = (client as unknown as { startupNodes?: { host?: string; port?: number }[] }).startupNodes ?? []
    const shown = nodes.length > 0 ? nodes : startup.map((node) => `${node.host ?? 'localhost'}:${node.port ?? 6379}`)
    return `cluster ${shown.join(',')}`
  }
  const options = (client as unknown as { options?: InspectableOptions }).options ?? {}
  if (options.sentinels && options.sentinels.length > 0) {
    const sentinels = options.sentinels.map((s) => `${s.host ?? 'localhost'}:${s.port ?? 26379}`).join(',')
    return `sentinel master '${options.name ?? '?'}' via ${sentinels}`
  }
  if (options.path) return `unix:${options.path}`
  const scheme = options.tls ? 'rediss' : 'redis'
  return `${scheme}://${options.host ?? 'localhost'}:${options.port ?? 6379}/${options.db ?? 0}`
}
