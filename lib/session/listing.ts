/**
 * Listing and clearing the sessions in Redis: SCAN over the prefix (glob-escaped, never KEYS; on a
 * Cluster every master), values fetched and keys deleted in chunks, each round trip bounded by the
 * manager's `step`. On a Cluster the sessions of one chunk live in different slots, so MGET and DEL
 * become one command per key (sent together: one round trip per chunk all the same).
 */
import type { Step } from '../core/calls.js'
import { isCluster, type RedisClient } from '../core/redis-types.js'
import { escapeGlob, scanBatches } from '../core/scan.js'

const SCAN_COUNT = 100
const CHUNK = 500

/** Every key under `prefix`, once each (SCAN may return a key more than once). */
export async function scanKeys(redis: RedisClient, prefix: string, step: Step): Promise<string[]> {
  const keys = new Set<string>()
  for await (const batch of scanBatches(redis, `${escapeGlob(prefix)}*`, SCAN_COUNT, step)) {
    for (const key of batch) keys.add(key)
  }
  return [...keys]
}

function getEach(redis: RedisClient, keys: readonly string[]): Promise<(string | null)[]> {
  return isCluster(redis) ? Promise.all(keys.map((key) => redis.get(key))) : redis.mget(...keys)
}

async function deleteEach(redis: RedisClient, keys: readonly string[]): Promise<void> {
  if (isCluster(redis)) await Promise.all(keys.map((key) => redis.del(key)))
  else await redis.del(...keys)
}

/** The values of `keys` (MGET in chunks), skipping keys gone meanwhile. */
export async function* values(redis: RedisClient, keys: readonly string[], step: Step): AsyncGenerator<[string, string]> {
  for (let i = 0; i < keys.length; i += CHUNK) {
    const chunk = keys.slice(i, i + CHUNK)
    const found = await step(getEach(redis, chunk))
    for (const [j, raw] of found.entries()) if (raw) yield [chunk[j] as string, raw]
  }
}

export async function deleteKeys(redis: RedisClient, keys: readonly string[], step: Step): Promise<void> {
  for (let i = 0; i < keys.length; i += CHUNK) await step(deleteEach(redis, keys.slice(i, i + CHUNK)))
}
