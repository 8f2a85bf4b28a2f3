/**
 * The Redis topologies of the failover scenarios, started fresh for every run with the test
 * helpers (real redis-server processes on free loopback ports): a Redis Cluster of 3 masters with
 * 1 replica each, or a master + replica watched by 3 sentinels. Tells each server under test where
 * to connect (the kit: its own REDIS_CLUSTER_NODES / REDIS_SENTINELS + REDIS_SENTINEL_NAME; the
 * peer: PEER_*), kills a master with kill -9, says when the topology reports the new master, and
 * which node serves a key now, for the checks after the run.
 *
 * Every topology started is tracked, so `stopTopologies()` (from a finally block or the SIGINT
 * handler) stops exactly those processes by PID; the helpers also SIGKILL them if this process exits.
 */
import calculateSlot from 'cluster-key-slot'
import { Redis } from 'ioredis'
import { redisCommand, RedisCluster } from '../../test/helpers/cluster.js'
import { RedisSentinelGroup } from '../../test/helpers/sentinel.js'
import type { Contender } from './servers.js'

export type TopologyKind = 'cluster' | 'sentinel'

/** cluster-node-timeout: how long a silent master has before its replica is promoted (as the tests use). */
export const CLUSTER_NODE_TIMEOUT_MS = 1000
/** Sentinel's down-after-milliseconds and failover-timeout (as the tests use). */
export const SENTINEL_DOWN_AFTER_MS = 1000
export const SENTINEL_FAILOVER_TIMEOUT_MS = 3000
/** How long the topology may take to report a new master before the run is abandoned. */
const FAILOVER_DEADLINE_MS = 30_000

export interface Topology {
  readonly kind: TopologyKind
  /** In a few words, for the log and the report. */
  readonly description: string
  /** The variables that point a server at this topology, as that server reads them. */
  env(contender: Contender): Record<string, string>
  /** Ports of the data nodes (masters and replicas, not sentinels) still running. */
  dataPorts(): number[]
  /** The port of the master serving `key` now, as the topology reports it. */
  masterFor(key: string): Promise<number>
  /** kill -9 one node; resolves once it has exited. */
  kill(port: number): Promise<void>
  /** Polls until the topology reports a new master in place of `oldPort`; resolves with its port. */
  waitForNewMaster(oldPort: number): Promise<number>
  stop(): Promise<void>
}

const running = new Set<Topology>()

const list = (nodes: ReadonlyArray<{ host: string; port: number }>): string => nodes.map((node) => `${node.host}:${node.port}`).join(',')

function track(topology: Topology): Topology {
  running.add(topology)
  return {
    ...topology,
    async stop() {
      running.delete(topology)
      await topology.stop()
    },
  }
}

export async function startTopology(kind: TopologyKind): Promise<Topology> {
  if (kind === 'cluster') {
    const cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: CLUSTER_NODE_TIMEOUT_MS })
    const nodes = list(cluster.startupNodes)
    return track({
      kind,
      description: `Redis Cluster, 3 masters + 1 replica each (cluster-node-timeout ${CLUSTER_NODE_TIMEOUT_MS} ms) on ${cluster.nodes.map((node) => node.port).join(', ')}`,
      // Every node, as a user lists them: any one may be down.
      env: (contender): Record<string, string> => (contender === 'kit' ? { REDIS_CLUSTER_NODES: nodes } : { PEER_CLUSTER_NODES: nodes }),
      dataPorts: () => cluster.nodes.filter((node) => node.alive).map((node) => node.port),
      masterFor: async (key) => (await cluster.masterForSlot(calculateSlot(key))).port,
      kill: (port) => cluster.kill(port),
      waitForNewMaster: async (oldPort) => (await cluster.waitForFailover(oldPort, FAILOVER_DEADLINE_MS)).port,
      stop: () => cluster.stop(),
    })
  }
  const group = await RedisSentinelGroup.start({ downAfterMs: SENTINEL_DOWN_AFTER_MS, failoverTimeoutMs: SENTINEL_FAILOVER_TIMEOUT_MS })
  const sentinels = list(group.sentinels)
  return track({
    kind,
    description: `master + replica + 3 sentinels (down-after-milliseconds ${SENTINEL_DOWN_AFTER_MS}, failover-timeout ${SENTINEL_FAILOVER_TIMEOUT_MS}) on ${group.nodes.map((node) => node.port).join(', ')}`,
    env: (contender): Record<string, string> => (contender === 'kit'
      ? { REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: group.name }
      : { PEER_SENTINELS: sentinels, PEER_SENTINEL_NAME: group.name }),
    dataPorts: () => group.nodes.filter((node) => node.kind === 'redis' && node.alive).map((node) => node.port),
    masterFor: () => group.masterPort(),
    kill: (port) => group.kill(port),
    waitForNewMaster: (oldPort) => group.waitForNewMaster(oldPort, FAILOVER_DEADLINE_MS),
    stop: () => group.stop(),
  })
}

/** Stops every topology still running (each process by its PID). */
export async function stopTopologies(): Promise<void> {
  await Promise.allSettled([...running].map((topology) => {
    running.delete(topology)
    return topology.stop()
  }))
}

/** A short-lived client to one node (null when it cannot be reached or `use` fails). */
export async function withNode<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T | null> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  client.on('error', () => { /* reported as null */ })
  try {
    await client.connect()
    return await use(client)
  } catch {
    return null
  } finally {
    client.disconnect()
  }
}

/** `session:*`, `cache:e:*`, `/api/scans/*` (apicache keys by URL), `visitor_count`: a key's pattern for counting what a node holds. */
function pattern(key: string): string {
  if (key.startsWith('/')) return `${key.slice(0, key.lastIndexOf('/') + 1)}*`
  const [first = key, second, ...rest] = key.split(':')
  if (second === undefined) return key
  // A short second part names a namespace (`cache:e`, `rate:api`, `job:{scan}`); a long one is an id (`session:<id>:…`).
  return rest.length > 0 && second.length <= 8 ? `${first}:${second}:*` : `${first}:*`
}

/** The keys one node holds, counted by pattern (SCAN; null when it cannot be read). */
export function keyCensus(port: number): Promise<Record<string, number> | null> {
  return withNode(port, async (client) => {
    const counts: Record<string, number> = {}
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'COUNT', 1000)
      cursor = next
      for (const key of keys) counts[pattern(key)] = (counts[pattern(key)] ?? 0) + 1
    } while (cursor !== '0')
    return counts
  })
}

/** Sets Redis' latency monitor threshold on every node given (see bench/chaos.ts). */
export async function monitorLatency(ports: readonly number[], thresholdMs: number): Promise<void> {
  await Promise.allSettled(ports.map((port) => redisCommand(port, ['CONFIG', 'SET', 'latency-monitor-threshold', String(thresholdMs)])))
}

/** Redis' own latency events (`LATENCY LATEST`: worst ms per event) of every node given, merged into `into`. */
export async function readLatency(ports: readonly number[], into: Map<string, number>): Promise<void> {
  for (const result of await Promise.allSettled(ports.map((port) => redisCommand(port, ['LATENCY', 'LATEST'])))) {
    if (result.status !== 'fulfilled' || !Array.isArray(result.value)) continue
    for (const entry of result.value) {
      if (!Array.isArray(entry)) continue
      const [event, , , max] = entry
      into.set(String(event), Math.max(into.get(String(event)) ?? 0, Number(max)))
    }
  }
}
