/**
 * The Redis half of the cache store. One hash per cache id (a folded path) holds every entry of
 * it — per origin, spelling, query and Vary variant (the field names are in key.ts):
 *
 *   ["b",…]    the response (no Vary), or the Vary record naming the headers of the variants
 *   ["v:…",…]  one variant per combination of those request header values
 *   l[…]       refill locks ("<owner>.<token>:expiresAtMs"), so one instance fills while the others wait
 *   k          the full id, when the key had to be hashed
 *
 * so a hit without Vary is ONE `HGET`, and invalidating an id (every entry and any fill in
 * progress) is ONE `UNLINK`. A fill is only written while its lock is still held: an
 * invalidation that deleted the hash meanwhile wins, and the older response is dropped.
 * A sorted set per hash (`<keyPrefix>cache:n:{<hash key>}`, the same Cluster slot) ranks its
 * fields by age; the fill script drops the oldest past `maxVariants`, so no flood of queries or
 * hosts grows a path without bound. Tag indexes are sets of hash keys, expiring with the
 * longest-lived entry they name.
 *
 * On a Cluster a script may only touch keys of one slot, and a tag set lives in another slot than
 * the hashes it names: a fill first adds its hash to each tag set (one command per set), then
 * stores with the hash alone; a tag invalidation reads the set, takes those members out of it,
 * then unlinks them one by one. The order keeps both races harmless: an invalidation between the
 * two steps of a fill deletes the hash and with it the lock the store needs, and a fill indexed
 * while a tag is invalidated stays in the set. Members taken out of the set but maybe not unlinked
 * (the connection failed) are journaled one by one. One Redis keeps one script per operation.
 */
import type { Step } from '../core/calls.js'
import { LuaScript } from '../core/lua.js'
import { isOutage } from '../core/outage.js'
import { isCluster, type RedisClient } from '../core/redis-types.js'
import { scanBatches, UNLINK_SET, unlinkKeys } from '../core/scan.js'
import { KeySpace, underPrefix, type CacheKey } from './key.js'
import type { EntryWrite, Target } from './types.js'

/**
 * KEYS[1] hash; ARGV lockField, token, ttlMs, owner, now. 1 when acquired, else 0. Locks read
 * "<owner>.<token>:<expiresAtMs>". Taken when free, expired, or held by this same instance: a
 * fill only starts when this instance has no other fill of that field, so its own lock can only
 * be an orphan (a fill cut off by an outage) and waiting for it would be waiting for nobody.
 * The time comes from the caller: `TIME` in a script needs a right a restricted ACL user may lack.
 */
const ACQUIRE = new LuaScript(`local now = tonumber(ARGV[5])
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[4] + 1) ~= ARGV[4] .. '.' then
  local expires = tonumber(string.match(held, ':(%d+)$'))
  if expires and expires > now then return 0 end
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4] .. '.' .. ARGV[2] .. ':' .. string.format('%d', now + ttl))
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1`)

/** KEYS[1] hash; ARGV lockField, "<owner>.<token>". Releases the lock only if it is still ours. */
const RELEASE = new LuaScript(`local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. ':' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0`)

/**
 * KEYS[1] hash, KEYS[2] its index (fields by age), KEYS[3..] tag sets; ARGV lockField,
 * "<owner>.<token>", field, entry, varyRecord ('' = none), lifetimeMs, fullId ('' unless hashed),
 * maxVariants, base field, now. 1 when stored, 0 when the lock was lost.
 *
 * A changed Vary record (or a response that no longer varies) drops the variants of its scope;
 * past maxVariants the oldest fields go, so a path holds a bounded number of entries.
 */
const PUT = new LuaScript(`local key, index = KEYS[1], KEYS[2]
local held = redis.call('HGET', key, ARGV[1])
if not held or string.sub(held, 1, #ARGV[2] + 1) ~= ARGV[2] .. ':' then return 0 end
redis.call('HDEL', key, ARGV[1])
local base, record, now = ARGV[9], ARGV[5], tonumber(ARGV[10])
local old = redis.call('HGET', key, base)
if old and string.byte(old, 1) == 2 and old ~= record then
  local tail = ',' .. string.sub(base, 6)
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 3) == '["v' and string.sub(name, -#tail) == tail then
      redis.call('HDEL', key, name)
      redis.call('ZREM', index, name)
    end
  end
end
if record ~= '' then
  if old ~= record then redis.call('HSET', key, base, record) end
  redis.call('ZADD', index, now, base)
end
redis.call('HSET', key, ARGV[3], ARGV[4])
redis.call('ZADD', index, now, ARGV[3])
local over = redis.call('ZCARD', index) - tonumber(ARGV[8])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', index, over)
  for i = 1, #oldest, 2 do redis.call('HDEL', key, oldest[i]) end
end
if ARGV[7] ~= '' then redis.call('HSET', key, 'k', ARGV[7]) end
local life = tonumber(ARGV[6])
if redis.call('PTTL', key) < life then redis.call('PEXPIRE', key, life) end
if redis.call('PTTL', index) < life then redis.call('PEXPIRE', index, life) end
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], key)
  if redis.call('PTTL', KEYS[i]) < life then redis.call('PEXPIRE', KEYS[i], life) end
end
return 1`)

/** KEYS[1] tag set; ARGV hash key, lifetimeMs. Indexes a hash under a tag (a Cluster's first step of a fill). */
const INDEX_TAG = new LuaScript(`redis.call('SADD', KEYS[1], ARGV[1])
local life = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < life then redis.call('PEXPIRE', KEYS[1], life) end
return 1`)

const orUndefined = (value: Buffer | null): Buffer | undefined => value ?? undefined

interface PendingRead {
  key: string
  field: string
  resolve(value: Buffer | null): void
  reject(error: unknown): void
}

/**
 * Reads issued in the same event-loop turn (the hits of every request parsed in one poll) go to
 * Redis as one pipeline: one socket write and one reply parse for many hits, instead of one each.
 * Each command keeps its own commandTimeout; a lone read is sent as is. Not used on a Cluster,
 * where one pipeline may not span slots.
 */
class ReadBatch {
  private queue: PendingRead[] = []
  private scheduled = false

  constructor(private readonly client: RedisClient) {}

  hget(key: string, field: string): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ key, field, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.flush)
      }
    })
  }

  private readonly flush = (): void => {
    this.scheduled = false
    const batch = this.queue
    this.queue = []
    const only = batch.length === 1 ? batch[0] : undefined
    if (only) {
      this.client.hgetBuffer(only.key, only.field).then((value) => only.resolve(value), (error: unknown) => only.reject(error))
      return
    }
    const pipeline = this.client.pipeline()
    for (const read of batch) pipeline.hgetBuffer(read.key, read.field)
    pipeline.exec().then((replies) => {
      batch.forEach((read, i) => {
        const [error, value] = replies?.[i] ?? [new Error('no reply in the pipeline')]
        if (error) read.reject(error)
        else read.resolve(value as Buffer | null)
      })
    }, (error: unknown) => { for (const read of batch) read.reject(error) })
  }
}

export class RedisCacheOps {
  private readonly batches = new WeakMap<RedisClient, ReadBatch>()

  /** `owner` names this instance in the locks it takes. */
  constructor(private readonly keys: KeySpace, private readonly owner: string) {}

  get(client: RedisClient, key: CacheKey, field: string): Promise<Buffer | undefined> {
    if (isCluster(client)) return client.hgetBuffer(key.redisKey, field).then(orUndefined)
    let batch = this.batches.get(client)
    if (!batch) {
      batch = new ReadBatch(client)
      this.batches.set(client, batch)
    }
    return batch.hget(key.redisKey, field).then(orUndefined)
  }

  async acquire(client: RedisClient, key: CacheKey, lockField: string, token: string, ttlMs: number): Promise<boolean> {
    return Number(await ACQUIRE.run(client, [key.redisKey], [lockField, token, ttlMs, this.owner, Date.now()])) === 1
  }

  async release(client: RedisClient, key: CacheKey, lockField: string, token: string): Promise<void> {
    await RELEASE.run(client, [key.redisKey], [lockField, `${this.owner}.${token}`])
  }

  async put(client: RedisClient, key: CacheKey, write: EntryWrite): Promise<boolean> {
    if (write.token === undefined) return false
    const lifetimeMs = Math.ceil(write.lifetimeMs)
    const tagKeys = write.tags.map((tag) => this.keys.tag(tag))
    const args = [write.lockField, `${this.owner}.${write.token}`, write.field, write.bytes, write.vary ?? '', lifetimeMs,
      key.hashed ? key.id : '', write.maxVariants, key.base, Date.now()]
    const keys = [key.redisKey, this.keys.index(key.redisKey)]
    if (!isCluster(client) || tagKeys.length === 0) return Number(await PUT.run(client, [...keys, ...tagKeys], args)) === 1
    // Indexed before it is stored: an entry in Redis is always in its tag sets (see the top of this file).
    await Promise.all(tagKeys.map((tagKey) => INDEX_TAG.run(client, [tagKey], [key.redisKey, lifetimeMs])))
    return Number(await PUT.run(client, keys, args)) === 1
  }

  /**
   * A key or tag invalidation: one command each (a tag on a Cluster: three round trips). On a
   * Cluster, `unfinished` gets the members read when the connection failed after that: the set may
   * no longer name them, so a replay of the tag alone would not find them.
   */
  async invalidate(client: RedisClient, target: Exclude<Target, { kind: 'prefix' }>, unfinished: (keys: string[]) => void): Promise<number> {
    if (target.kind === 'key') {
      // Each hash with its index: one slot, one command (one per id on a Cluster).
      const removed = await Promise.all(target.ids.map((id) => {
        const redisKey = this.keys.entry(id).redisKey
        return client.unlink(redisKey, this.keys.index(redisKey))
      }))
      return removed.reduce((sum, count) => sum + count, 0)
    }
    const tagKey = this.keys.tag(target.tag)
    if (!isCluster(client)) return Number(await UNLINK_SET.run(client, [tagKey], []))
    const members = await client.smembers(tagKey)
    if (members.length === 0) return 0
    try {
      // Out of the set first: a fill that indexes one of them again meanwhile stays indexed (SREM
      // of the last member deletes the set, as UNLINK would).
      await client.srem(tagKey, ...members)
      await Promise.all(members.map((member) => client.unlink(member)))
    } catch (error) {
      if (isOutage(error)) unfinished(members)
      throw error
    }
    return members.length
  }

  /** A prefix invalidation: SCAN (every master of a Cluster), each round trip bounded by `step`. */
  async invalidatePrefix(client: RedisClient, prefix: string, step: Step): Promise<number> {
    const pattern = this.keys.scanPattern(prefix)
    let removed = 0
    for await (const found of scanBatches(client, pattern, 1000, step)) {
      const doomed = KeySpace.needsCheck(prefix) ? await this.reallyUnder(client, found, prefix, step) : found
      removed += await unlinkKeys(client, doomed, step)
    }
    return removed
  }

  /** Long prefixes: SCAN matched only the readable head, so check each candidate's full id. */
  private async reallyUnder(client: RedisClient, candidates: string[], prefix: string, step: Step): Promise<string[]> {
    const doomed: string[] = []
    for (const redisKey of candidates) {
      const id = this.keys.plainId(redisKey) ?? await step(client.hget(redisKey, 'k'))
      if (id !== null && id !== undefined && underPrefix(id, prefix)) doomed.push(redisKey)
    }
    return doomed
  }
}
