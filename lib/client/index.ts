/**
 * `kit.client`: a small key-value API with the same semantics on Redis and in memory.
 * Each method is written twice (Redis, memory) and the connection manager picks one per call;
 * while Redis is up, writes also refresh the memory twin so an outage starts from what this
 * instance last wrote. Arguments are checked before either half runs, so a value or TTL that
 * Redis would refuse, memory could not hold or JSON cannot encode fails the same way in every mode.
 */
import { decodeValue, encodeValue } from '../core/codec.js'
import type { DualCall } from '../core/calls.js'
import type { FeatureContext } from '../core/context.js'
import type { JournalWrite } from '../core/journal.js'
import type { MemoryStore } from '../core/memory.js'
import type { RedisClient } from '../core/redis-types.js'
import { invalidArgument, KitError } from '../core/errors.js'
import type { KitValue } from '../types.js'

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

/*
 * Each method is one small call object with its two halves as methods: one allocation per call
 * on the hot path instead of a closure per half (measurable in bench/client.ts).
 */

class GetCall implements DualCall<KitValue | null, string | null> {
  constructor(private readonly key: string, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<string | null> { return client.get(this.key) }
  fromRedis(raw: string | null): KitValue | null { return decodeValue(raw) }
  memory(): KitValue | null { return decodeValue(this.store.get(this.key)) }
}

class SetCall implements DualCall<boolean, unknown> {
  private readonly at = Date.now()
  constructor(private readonly key: string, private readonly value: string, private readonly ms: number, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<unknown> { return client.set(this.key, this.value, 'PX', this.ms) }
  fromRedis(): boolean { return this.memory() }
  memory(): boolean { this.store.set(this.key, this.value, this.ms); return true }
  get journal(): JournalWrite { return { op: 'set', key: this.key, value: this.value, expiresAt: this.at + this.ms } }
}

class DeleteCall implements DualCall<boolean, number> {
  constructor(private readonly key: string, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<number> { return client.del(this.key) }
  fromRedis(removed: number): boolean { this.store.delete(this.key); return removed > 0 }
  memory(): boolean { return this.store.delete(this.key) }
  get journal(): JournalWrite { return { op: 'del', key: this.key } }
}

class ExistsCall implements DualCall<boolean, number> {
  constructor(private readonly key: string, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<number> { return client.exists(this.key) }
  fromRedis(count: number): boolean { return count > 0 }
  memory(): boolean { return this.store.has(this.key) }
}

class IncrementCall implements DualCall<number, number> {
  constructor(private readonly key: string, private readonly amount: number, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<number> {
    return client.incrby(this.key, this.amount).catch((error: unknown) => {
      throw isNotInteger(error) ? new KitError('ERR_KIT_NOT_INTEGER', NOT_INTEGER) : error
    })
  }
  fromRedis(next: number): number { this.store.replaceKeepTtl(this.key, String(next)); return next }
  memory(): number {
    const next = parseInteger(this.store.get(this.key)) + this.amount
    this.store.replaceKeepTtl(this.key, String(next))
    return next
  }
  get journal(): JournalWrite { return { op: 'incrby', key: this.key, delta: this.amount } }
}

class ExpireCall implements DualCall<boolean, number> {
  private readonly at = Date.now()
  constructor(private readonly key: string, private readonly ms: number, private readonly store: MemoryStore) {}
  redis(client: RedisClient): Promise<number> { return client.pexpire(this.key, this.ms) }
  fromRedis(set: number): boolean { this.store.expire(this.key, this.ms); return set === 1 }
  memory(): boolean { return this.store.expire(this.key, this.ms) }
  get journal(): JournalWrite { return { op: 'pexpireat', key: this.key, at: this.at + this.ms } }
}

/** Bad arguments reject (never throw synchronously), like every other failure of a call. */
function rejected(error: unknown): Promise<never> {
  return Promise.reject(error)
}

export class KeyValueClient {
  private readonly ctx: FeatureContext
  private readonly store: MemoryStore

  constructor(ctx: FeatureContext) {
    this.ctx = ctx
    this.store = ctx.memory
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
  get(key: string): Promise<KitValue | null> {
    try {
      checkKey('get', key)
      return this.ctx.run(new GetCall(this.ctx.key(key), this.store))
    } catch (error) {
      return rejected(error)
    }
  }

  /** Stores `value` for `ttl` seconds (default one hour). Resolves `true`. */
  set(key: string, value: KitValue, ttl = 3600): Promise<boolean> {
    try {
      checkKey('set', key)
      const ms = ttlMs('set', 'ttl', ttl)
      const full = this.ctx.key(key)
      return this.ctx.run(new SetCall(full, this.encode('set', full, value), ms, this.store))
    } catch (error) {
      return rejected(error)
    }
  }

  /** Removes `key`; resolves whether it existed. */
  delete(key: string): Promise<boolean> {
    try {
      checkKey('delete', key)
      return this.ctx.run(new DeleteCall(this.ctx.key(key), this.store))
    } catch (error) {
      return rejected(error)
    }
  }

  exists(key: string): Promise<boolean> {
    try {
      checkKey('exists', key)
      return this.ctx.run(new ExistsCall(this.ctx.key(key), this.store))
    } catch (error) {
      return rejected(error)
    }
  }

  /**
   * Adds `amount` (default 1) to the integer under `key`, starting from 0, and resolves the new
   * value. Rejects with code `ERR_KIT_NOT_INTEGER` when the stored value is not an integer.
   */
  increment(key: string, amount = 1): Promise<number> {
    try {
      checkKey('increment', key)
      if (!Number.isSafeInteger(amount)) throw invalidArgument('increment', `amount must be an integer, got ${String(amount)}`)
      return this.ctx.run(new IncrementCall(this.ctx.key(key), amount, this.store))
    } catch (error) {
      return rejected(error)
    }
  }

  /** Sets `key` to expire in `seconds`; resolves whether the key exists. */
  expire(key: string, seconds: number): Promise<boolean> {
    try {
      checkKey('expire', key)
      const ms = ttlMs('expire', 'seconds', seconds)
      return this.ctx.run(new ExpireCall(this.ctx.key(key), ms, this.store))
    } catch (error) {
      return rejected(error)
    }
  }
}
