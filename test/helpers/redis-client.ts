/**
 * The tests' own ioredis clients, for looking into Redis behind the kit's back (never the kit's).
 *
 * Tests kill, hang and restart servers, so a client may outlive its server: each one has an 'error'
 * listener (without one ioredis prints "[ioredis] Unhandled error event" on every reconnection
 * attempt, for the rest of the run), and none outlives the test that made it — the root hooks
 * (test/setup.ts) disconnect what a test left open, also when an assertion failed before its own
 * disconnect(). A client made in a `before` hook lives until the suite's `after` disconnects it
 * (or, failing that, the end of the run).
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisServer } from './redis-server.js'

const open = new Map<Redis | Cluster, 'test' | 'suite'>()
let inTest = false

/** A client of `target` (a RedisServer, whose password it uses, or a port on 127.0.0.1). */
export function testClient(target: RedisServer | number, options: RedisOptions = {}): Redis {
  const server = typeof target === 'number' ? { port: target, password: undefined } : target
  const client = new Redis({ host: '127.0.0.1', port: server.port, password: server.password, ...options })
  // Connection errors are expected here (the test stopped the server); failed commands still reject.
  client.on('error', () => {})
  open.set(client, inTest ? 'test' : 'suite')
  client.once('end', () => { open.delete(client) })
  return client
}

/**
 * A Cluster client of `nodes` (a RedisCluster's startupNodes), resolved once it has loaded the slot
 * map: a keyless command sent before that goes to a random start-up node. Tracked like testClient.
 */
export async function testClusterClient(nodes: ReadonlyArray<{ host: string; port: number }>, options: ClusterOptions = {}): Promise<Cluster> {
  const client = new Cluster([...nodes], {
    // Fail over with the cluster rather than fail a test's lookup at the first refused connection.
    retryDelayOnClusterDown: 100,
    retryDelayOnFailover: 100,
    slotsRefreshTimeout: 1000,
    redisOptions: { connectTimeout: 1000 },
    ...options,
  })
  client.on('error', () => {})
  client.on('node error', () => {})
  open.set(client, inTest ? 'test' : 'suite')
  client.once('end', () => { open.delete(client) })
  if (client.status !== 'ready') await new Promise<void>((resolve) => client.once('ready', () => resolve()))
  return client
}

/** Root hooks only: a test (with its beforeEach/afterEach hooks) starts or ends. */
export function testRunning(running: boolean): void {
  inTest = running
}

/** Root hooks only: disconnects the clients still open — those of the test that ended, or all. */
export function disconnectTestClients(scope: 'test' | 'all'): number {
  let count = 0
  for (const [client, madeIn] of open) {
    if (scope === 'test' && madeIn !== 'test') continue
    open.delete(client)
    client.disconnect()
    count++
  }
  return count
}
