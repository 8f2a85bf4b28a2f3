/**
 * The clears of the replay: a pattern clear (a session clear(), a cache prefix invalidation) and
 * a set clear (a cache tag invalidation). Both are idempotent, so they run as several bounded
 * round trips and are simply run again when one is cut off; on a Cluster every master is scanned
 * and keys are unlinked one by one (a set's members live in other slots than the set).
 */
import type { TaskEffect } from './journal.js'
import { isCluster, type RedisClient } from './redis-types.js'
import { scanBatches, UNLINK_SET, unlinkKeys } from './scan.js'
import { within } from './watchdog.js'

const SCAN_COUNT = 1000

/** Runs one clear, each round trip bounded by `timeoutMs`. */
export async function runTask(client: RedisClient, task: TaskEffect, timeoutMs: number): Promise<void> {
  const step = <R>(roundTrip: Promise<R>): Promise<R> => within(roundTrip, timeoutMs, 'Replay')
  if (task.op === 'unlink-set') {
    if (!isCluster(client)) {
      await step(UNLINK_SET.run(client, [task.target], []))
      return
    }
    await unlinkKeys(client, await step(client.smembers(task.target)), step)
    await step(client.unlink(task.target))
    return
  }
  for await (const keys of scanBatches(client, task.target, SCAN_COUNT, step)) await unlinkKeys(client, keys, step)
}
