/**
 * Listing and removing keys without KEYS, for features and for the replay's clears: SCAN over a
 * key pattern (every master of a Cluster), UNLINK in bounded chunks, and a set's members unlinked
 * with the set (a cache tag).
 */
import type { Step } from './calls.js'
import { LuaScript } from './lua.js'
import { isCluster, type RedisClient } from './redis-types.js'

const UNLINK_CHUNK = 500

/**
 * KEYS[1] a set of keys: unlinks its members, then the set; returns how many it named. One node
 * only: on a Cluster the members live in other slots than the set.
 */
export const UNLINK_SET = new LuaScript(`local members = redis.call('SMEMBERS', KEYS[1])
for i = 1, #members, 500 do
  redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[1])
return #members`)

/**
 * UNLINKs `keys`, each round trip through `step`: in chunks on one Redis, one key per command on a
 * Cluster (the keys of a chunk span slots). Returns how many existed.
 */
export async function unlinkKeys(client: RedisClient, keys: readonly string[], step: Step): Promise<number> {
  if (keys.length === 0) return 0
  if (isCluster(client)) {
    const removed = await step(Promise.all(keys.map((key) => client.unlink(key))))
    return removed.reduce((sum, count) => sum + count, 0)
  }
  let removed = 0
  for (let i = 0; i < keys.length; i += UNLINK_CHUNK) removed += await step(client.unlink(...keys.slice(i, i + UNLINK_CHUNK)))
  return removed
}

/** Escapes SCAN/KEYS glob characters, so a prefix like `app[1]:` matches only itself. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Yields the keys matching `pattern` one SCAN batch at a time (a key may appear in two batches).
 * On a Cluster every master is scanned in turn: SCAN only sees the keys of the node it runs on.
 */
export async function* scanBatches(client: RedisClient, pattern: string, count: number, step: Step): AsyncGenerator<string[]> {
  const nodes: RedisClient[] = isCluster(client) ? client.nodes('master') : [client]
  for (const node of nodes) {
    let cursor = '0'
    do {
      const reply = await step(node.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)) as Promise<[string | Buffer, (string | Buffer)[]]>)
      cursor = String(reply[0])
      yield reply[1].map(String)
    } while (cursor !== '0')
  }
}
