/**
 * The clears of the replay: a pattern clear (a session clear(), a cache prefix invalidation) and
 * a set clear (a cache tag invalidation). Both are idempotent, so they run as several bounded
 * round trips and are simply run again when one is cut off; on a Cluster every master is scanned
 * and keys are unlinked one by one (a set's members live in other slots than the set).
 */
import type { Redis } from 'ioredis'
import type { TaskEffect } from './journal.js'
import { LuaScript } from './lua.js'
import { isCluster, type RedisClient } from './redis-types.js'
import { within } from './watchdog.js'

const SCAN_COUNT = 1000
const UNLINK_CHUNK = 500

/** KEYS[1] a set of keys: unlinks its members, then the set (a single-node Redis only). */
const UNLINK_SET = new LuaScript(`local members = redis.call('SMEMBERS', KEYS[1])
for i = 1, #members, 500 do
  redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('UNLINK', KEYS[1])
return #members`)


/** Runs one clear, each round trip bounded by `timeoutMs`. */
export async function runTask(client: RedisClient, task: TaskEffect, timeoutMs: number): Promise<void> {
  if (task.op === 'unlink-set') {
    if (!isCluster(client)) {
      await within(UNLINK_SET.run(client, [task.target], []), timeoutMs, 'Replay')
      return
    }
    const members = await within(client.smembers(task.target), timeoutMs, 'Replay')
    await unlink(client, members, timeoutMs)
    await within(client.unlink(task.target), timeoutMs, 'Replay')
    return
  }
  const nodes: Redis[] = isCluster(client) ? client.nodes('master') : [client]
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await within(node.scan(cursor, 'MATCH', task.target, 'COUNT', SCAN_COUNT), timeoutMs, 'Replay')
      cursor = next
      await unlink(client, keys, timeoutMs)
    } while (cursor !== '0')
  }
}

/** UNLINK in chunks; on a Cluster one key per command (keys of one chunk span slots). */
async function unlink(client: RedisClient, keys: readonly string[], timeoutMs: number): Promise<void> {
  if (isCluster(client)) {
    await within(Promise.all(keys.map((key) => client.unlink(key))), timeoutMs, 'Replay')
    return
  }
  for (let i = 0; i < keys.length; i += UNLINK_CHUNK) {
    await within(client.unlink(...keys.slice(i, i + UNLINK_CHUNK)), timeoutMs, 'Replay')
  }
}
