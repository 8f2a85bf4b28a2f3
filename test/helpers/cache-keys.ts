/**
 * Reading the cache's Redis hashes in tests. Every entry of an id (origin, spelling, query, Vary
 * variant) is a field of `cache:e:<id>` named by a JSON array (lib/cache/key.ts): `["b", …]` for a
 * response or Vary record, `["v:…", …]` for a variant, `l[…]` for a fill's lock.
 */
import type { Redis } from 'ioredis'
import type { RequestHandler } from 'express'

/** The fields of entries (not locks, not `k`) in the hash of `id`, sorted. */
export async function entryFields(raw: Redis, id: string, prefix = ''): Promise<string[]> {
  return (await raw.hkeys(`${prefix}cache:e:${id}`)).filter((field) => field.startsWith('[')).sort()
}

/** Whether a response or Vary record of `id` is stored (for any origin). */
export async function isStored(raw: Redis, id: string, prefix = ''): Promise<boolean> {
  return (await entryFields(raw, id, prefix)).some((field) => field.startsWith('["b",'))
}

/** The stored bytes of the one base field of `id`, or null. */
export async function storedBytes(raw: Redis, id: string): Promise<Buffer | null> {
  const field = (await entryFields(raw, id)).find((f) => f.startsWith('["b",'))
  return field === undefined ? null : raw.hgetBuffer(`cache:e:${id}`, field)
}

/** Whether any fill of `id` holds a lock. */
export async function isLocked(raw: Redis, id: string): Promise<boolean> {
  return (await raw.hkeys(`cache:e:${id}`)).some((field) => field.startsWith('l['))
}

/**
 * What a load balancer does for app instances on different ports: one public Host for all of
 * them (the cache keys entries by host, so instances share entries only for the same host).
 */
export function publicHost(host = 'app.test'): RequestHandler {
  return function publicHost(req, _res, next) {
    req.headers.host = host
    next()
  }
}
