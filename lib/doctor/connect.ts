/**
 * The doctor's one connection: the kit's own client (same topology, TLS, user), told not to
 * retry, not to run ioredis' INFO ready check (a user without INFO would get a warning printed
 * into the report) and to give up after the doctor's timeout.
 */
import type { KitConfig } from '../core/config.js'
import { createRedisClient } from '../core/redis-client.js'
import { isCluster, type RedisClient } from '../core/redis-types.js'

/** Why the doctor could not connect, with what the hints need to read it (hints.ts). */
export class ConnectFailure extends Error {
  constructor(readonly original: Error, readonly beforeFirstReply: boolean) {
    super(original.message)
    this.name = 'ConnectFailure'
  }
}

/** A Cluster reports its nodes' errors wrapped ("Failed to refresh slots cache"): the node's own error says more. */
function innermost(error: Error): Error {
  const last = (error as { lastNodeError?: unknown }).lastNodeError
  return last instanceof Error ? last : error
}

export function connectOnce(config: KitConfig, timeoutMs: number): Promise<RedisClient> {
  const client = createRedisClient(config, {
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
    failoverDetector: false,
    enableReadyCheck: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    connectionName: 'express-redis-kit-doctor',
  }, { clusterRetryStrategy: () => null, enableReadyCheck: false, slotsRefreshTimeout: timeoutMs })
  let lastError: Error | undefined
  let connected = false
  let replied = false
  const noteError = (error: Error): void => { lastError = innermost(error) }
  client.on('error', noteError)
  client.on('node error', noteError)
  client.on('connect', () => { connected = true })
  client.on('ready', () => { replied = true })
  const failure = (error: Error): ConnectFailure => new ConnectFailure(lastError ?? innermost(error), connected && !replied)
  return new Promise<RedisClient>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.disconnect()
      reject(failure(new Error(`not ready within ${timeoutMs} ms (timed out)`)))
    }, timeoutMs + 200)
    void client.connect().then(
      // ioredis reports a failed SELECT only as an 'error' event and carries on in database 0.
      () => {
        clearTimeout(timer)
        if (lastError && !isCluster(client)) { client.disconnect(); reject(failure(lastError)) } else resolve(client)
      },
      (error: Error) => { clearTimeout(timer); client.disconnect(); reject(failure(error)) },
    )
  })
}
