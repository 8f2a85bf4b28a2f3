/**
 * `kit.client`: a small key-value API with the same semantics on Redis and in memory.
 * Each method is written twice (Redis, memory) and the connection manager picks one per call;
 * while Redis is up, writes also refresh the memory twin so an outage starts from what this
 * instance last wrote.
 */
import { decodeValue, encodeValue } from './codec.js'
import type { ConnectionManager } from './connection.js'
import { invalidArgument, KitError } from './errors.js'
import type { MemoryStore } from './memory.js'
import type { KitValue } from './types.js'

const NOT_INTEGER = 'value is not an integer or out of range'

function checkKey(method: string, key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw invalidArgument(method, 'key must be a non-empty string')
}

function checkSeconds(method: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidArgument(method, `${name} must be a positive number of seconds, got ${String(value)}`)
  }
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
  private readonly manager: ConnectionManager
  private readonly memory: MemoryStore

  constructor(manager: ConnectionManager) {
    this.manager = manager
    this.memory = manager.memory('client')
    manager.registerFeature('client')
  }

  private key(key: string): string {
    return this.manager.key('', key)
  }

  /** The value stored under `key`, or `null` when there is none. */
  async get(key: string): Promise<KitValue | null> {
    checkKey('get', key)
    const full = this.key(key)
    return this.manager.run({
      redis: async (redis) => decodeValue(await redis.get(full)),
      memory: () => decodeValue(this.memory.get(full)),
    })
  }

  /** Stores `value` for `ttl` seconds (default one hour). Resolves `true`. */
  async set(key: string, value: KitValue, ttl = 3600): Promise<boolean> {
    checkKey('set', key)
    checkSeconds('set', 'ttl', ttl)
    const full = this.key(key)
    const encoded = encodeValue(value, 'set')
    const ttlMs = Math.ceil(ttl * 1000)
    const remember = (): boolean => { this.memory.set(full, encoded, ttlMs); return true }
    return this.manager.run({
      redis: async (redis) => { await redis.set(full, encoded, 'PX', ttlMs); return remember() },
      memory: remember,
      journal: { op: 'set', key: full, value: encoded, expiresAt: Date.now() + ttlMs },
    })
  }

  /** Removes `key`; resolves whether it existed. */
  async delete(key: string): Promise<boolean> {
    checkKey('delete', key)
    const full = this.key(key)
    return this.manager.run({
      redis: async (redis) => { this.memory.delete(full); return (await redis.del(full)) > 0 },
      memory: () => this.memory.delete(full),
      journal: { op: 'del', key: full },
    })
  }

  async exists(key: string): Promise<boolean> {
    checkKey('exists', key)
    const full = this.key(key)
    return this.manager.run({
      redis: async (redis) => (await redis.exists(full)) > 0,
      memory: () => this.memory.has(full),
    })
  }

  /**
   * Adds `amount` (default 1) to the integer under `key`, starting from 0, and resolves the new
   * value. Rejects with code `ERR_KIT_NOT_INTEGER` when the stored value is not an integer.
   */
  async increment(key: string, amount = 1): Promise<number> {
    checkKey('increment', key)
    if (!Number.isSafeInteger(amount)) throw invalidArgument('increment', `amount must be an integer, got ${String(amount)}`)
    const full = this.key(key)
    const inMemory = (): number => {
      const next = parseInteger(this.memory.get(full)) + amount
      this.memory.replaceKeepTtl(full, String(next))
      return next
    }
    return this.manager.run({
      redis: async (redis) => {
        let next: number
        try {
          next = await redis.incrby(full, amount)
        } catch (error) {
          if (isNotInteger(error)) throw new KitError('ERR_KIT_NOT_INTEGER', NOT_INTEGER)
          throw error
        }
        this.memory.replaceKeepTtl(full, String(next))
        return next
      },
      memory: inMemory,
      journal: { op: 'incrby', key: full, delta: amount },
    })
  }

  /** Sets `key` to expire in `seconds`; resolves whether the key exists. */
  async expire(key: string, seconds: number): Promise<boolean> {
    checkKey('expire', key)
    checkSeconds('expire', 'seconds', seconds)
    const full = this.key(key)
    const ttlMs = Math.ceil(seconds * 1000)
    return this.manager.run({
      redis: async (redis) => { this.memory.expire(full, ttlMs); return (await redis.pexpire(full, ttlMs)) === 1 },
      memory: () => this.memory.expire(full, ttlMs),
      journal: { op: 'pexpireat', key: full, at: Date.now() + ttlMs },
    })
  }
}
