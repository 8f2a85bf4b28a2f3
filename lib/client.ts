/**
 * `kit.client`: a small key-value API with the same semantics on Redis and in memory.
 * Each method is written twice (Redis, memory) and the connection manager picks one per call;
 * while Redis is up, writes also refresh the memory twin so an outage starts from what this
 * instance last wrote. Arguments are checked before either half runs, so a value or TTL that
 * Redis would refuse, memory could not hold or JSON cannot encode fails the same way in every mode.
 */
import { decodeValue, encodeValue } from './codec.js'
import type { FeatureContext } from './core/context.js'
import { invalidArgument, KitError } from './errors.js'
import type { KitValue } from './types.js'

const NOT_INTEGER = 'value is not an integer or out of range'
/** Redis' default `proto-max-bulk-len`: a larger value is refused. */
const MAX_REDIS_VALUE_BYTES = 512 * 1024 * 1024

function checkKey(method: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw invalidArgument(method, `key must be a non-empty string, got ${typeof key === 'string' ? "''" : typeof key}`)
}

/** Seconds to whole milliseconds, refusing what Redis (or a JS clock) cannot represent. */
function ttlMs(method: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidArgument(method, `${name} must be a positive number of seconds, got ${String(value)}`)
  }
  const ms = Math.ceil(value * 1000)
  if (!Number.isSafeInteger(Date.now() + ms)) {
    throw invalidArgument(method, `${name} is ${String(value)} seconds, beyond what Redis can expire; use at most ${Math.floor((Number.MAX_SAFE_INTEGER - Date.now()) / 1000)} seconds`)
  }
  return ms
}

/** Redis INCRBY's rule: the stored text must be a base-10 64-bit integer. */
function parseInteger(raw: string | undefined): number {
  if (raw === undefined) return 0
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new KitError('ERR_KIT_NOT_INTEGER', NOT_INTEGER)
  return Number(raw)
}

function isNotInteger(error: unknown): boolean {
  return error instanceof Error && error.message.includes(NOT_INTEGER)
}

export class KeyValueClient {
  private readonly ctx: FeatureContext

  constructor(ctx: FeatureContext) {
    this.ctx = ctx
    ctx.register()
  }

  /** A value must fit the memory twin and the journal (it may have to live there) and Redis. */
  private encode(method: string, full: string, value: KitValue): string {
    const encoded = encodeValue(value, method)
    const bytes = 2 * (encoded.length + full.length)
    const { memory, journal } = this.ctx.settings
    const limit = Math.min(memory.maxBytes, journal.maxBytes)
    if (bytes > limit) {
      throw invalidArgument(method, `the value is too large to keep through an outage (about ${bytes} bytes; memory.maxBytes is ${memory.maxBytes} `
        + `and journal.maxBytes ${journal.maxBytes} per feature). Store less, or raise both limits in createKit()`)
    }
    if (encoded.length > MAX_REDIS_VALUE_BYTES / 4 && Buffer.byteLength(encoded) > MAX_REDIS_VALUE_BYTES) {
      throw invalidArgument(method, 'the value is larger than Redis accepts (512 MiB)')
    }
    return encoded
  }

  /** The value stored under `key`, or `null` when there is none. */
  async get(key: string): Promise<KitValue | null> {
    checkKey('get', key)
    const full = this.ctx.key(key)
    const memory = this.ctx.memory
    return this.ctx.run({
      redis: async (redis) => decodeValue(await redis.get(full)),
      memory: () => decodeValue(memory.get(full)),
    })
  }

  /** Stores `value` for `ttl` seconds (default one hour). Resolves `true`. */
  async set(key: string, value: KitValue, ttl = 3600): Promise<boolean> {
    checkKey('set', key)
    const ms = ttlMs('set', 'ttl', ttl)
    const full = this.ctx.key(key)
    const encoded = this.encode('set', full, value)
    const memory = this.ctx.memory
    const remember = (): boolean => { memory.set(full, encoded, ms); return true }
    return this.ctx.run({
      redis: (redis) => redis.set(full, encoded, 'PX', ms),
      fromRedis: remember,
      memory: remember,
      journal: { op: 'set', key: full, value: encoded, expiresAt: Date.now() + ms },
    })
  }

  /** Removes `key`; resolves whether it existed. */
  async delete(key: string): Promise<boolean> {
    checkKey('delete', key)
    const full = this.ctx.key(key)
    const memory = this.ctx.memory
    return this.ctx.run({
      redis: (redis) => redis.del(full),
      fromRedis: (removed) => { memory.delete(full); return removed > 0 },
      memory: () => memory.delete(full),
      journal: { op: 'del', key: full },
    })
  }

  async exists(key: string): Promise<boolean> {
    checkKey('exists', key)
    const full = this.ctx.key(key)
    const memory = this.ctx.memory
    return this.ctx.run({
      redis: async (redis) => (await redis.exists(full)) > 0,
      memory: () => memory.has(full),
    })
  }

  /**
   * Adds `amount` (default 1) to the integer under `key`, starting from 0, and resolves the new
   * value. Rejects with code `ERR_KIT_NOT_INTEGER` when the stored value is not an integer.
   */
  async increment(key: string, amount = 1): Promise<number> {
    checkKey('increment', key)
    if (!Number.isSafeInteger(amount)) throw invalidArgument('increment', `amount must be an integer, got ${String(amount)}`)
    const full = this.ctx.key(key)
    const memory = this.ctx.memory
    return this.ctx.run({
      redis: (redis) => redis.incrby(full, amount).catch((error: unknown) => {
        throw isNotInteger(error) ? new KitError('ERR_KIT_NOT_INTEGER', NOT_INTEGER) : error
      }),
      fromRedis: (next) => {
        memory.replaceKeepTtl(full, String(next))
        return next
      },
      memory: () => {
        const next = parseInteger(memory.get(full)) + amount
        memory.replaceKeepTtl(full, String(next))
        return next
      },
      journal: { op: 'incrby', key: full, delta: amount },
    })
  }

  /** Sets `key` to expire in `seconds`; resolves whether the key exists. */
  async expire(key: string, seconds: number): Promise<boolean> {
    checkKey('expire', key)
    const ms = ttlMs('expire', 'seconds', seconds)
    const full = this.ctx.key(key)
    const memory = this.ctx.memory
    return this.ctx.run({
      redis: (redis) => redis.pexpire(full, ms),
      fromRedis: (set) => { memory.expire(full, ms); return set === 1 },
      memory: () => memory.expire(full, ms),
      journal: { op: 'pexpireat', key: full, at: Date.now() + ms },
    })
  }
}
