/**
 * The sentinels' view of the master, asked of each sentinel on its own connection (SENTINEL
 * get-master-addr-by-name): which ones answer, whether they agree, and — when none knows the
 * configured name — which names they do monitor.
 */
import type { Redis } from 'ioredis'
import type { KitConfig } from '../core/config.js'
import { createRedisClient } from '../core/redis-client.js'
import type { HostPort } from '../core/topology.js'
import { within } from '../core/watchdog.js'

export interface SentinelView {
  /** host:port of the sentinel. */
  address: string
  /** host:port of the master it names, or undefined when it does not know the name. */
  master?: string
  /** Why it could not be asked. */
  error?: string
}

export interface SentinelsReport {
  views: SentinelView[]
  /** The master names the answering sentinels monitor (for a name none of them knows). */
  monitored: string[]
}

function address(node: HostPort): string {
  return node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`
}

/** A one-shot connection to one sentinel, with the sentinels' own password, user and TLS. */
async function connectSentinel(config: KitConfig, node: HostPort, timeoutMs: number): Promise<Redis> {
  const topology = config.topology
  const sentinelConfig: KitConfig = {
    ...config,
    topology: { kind: 'standalone', url: new URL(`redis://${address(node)}`) },
    password: topology.kind === 'sentinel' ? topology.password : undefined,
    username: topology.kind === 'sentinel' ? topology.username : undefined,
    db: 0,
  }
  const client = createRedisClient(sentinelConfig, {
    retryStrategy: () => null, enableReadyCheck: false, connectTimeout: timeoutMs, commandTimeout: timeoutMs, connectionName: 'express-redis-kit-doctor',
  }) as Redis
  client.on('error', () => {}) // the connect() rejection says it
  await client.connect()
  return client
}

function pairs(reply: unknown): Map<string, string> {
  const map = new Map<string, string>()
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), String(reply[i + 1]))
  else if (reply instanceof Map) for (const [k, v] of reply) map.set(String(k), String(v))
  return map
}

/** Asks every configured sentinel where the master `name` is. */
export async function askSentinels(config: KitConfig, timeoutMs: number): Promise<SentinelsReport> {
  const topology = config.topology
  if (topology.kind !== 'sentinel') return { views: [], monitored: [] }
  const monitored = new Set<string>()
  const views = await Promise.all(topology.nodes.map(async (node): Promise<SentinelView> => {
    let client: Redis | undefined
    try {
      client = await connectSentinel(config, node, timeoutMs)
      const reply = await within(client.call('SENTINEL', 'get-master-addr-by-name', topology.name), timeoutMs, 'SENTINEL')
      if (Array.isArray(reply) && reply.length >= 2) return { address: address(node), master: address({ host: String(reply[0]), port: Number(reply[1]) }) }
      const masters = await within(client.call('SENTINEL', 'MASTERS') as Promise<unknown[]>, timeoutMs, 'SENTINEL').catch(() => [])
      for (const master of Array.isArray(masters) ? masters : []) monitored.add(pairs(master).get('name') ?? '?')
      return { address: address(node) }
    } catch (error) {
      return { address: address(node), error: error instanceof Error ? error.message : String(error) }
    } finally {
      client?.disconnect()
    }
  }))
  return { views, monitored: [...monitored] }
}
