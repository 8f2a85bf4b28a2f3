/**
 * The only place outside the connection manager that names ioredis: features receive these
 * types from the manager and never construct or import a client themselves.
 */
import type { Cluster, Redis } from 'ioredis'

export type RedisClient = Redis | Cluster

export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster === true
}
