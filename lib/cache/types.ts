/**
 * Shapes several cache modules share. They live here rather than beside one of their users so that
 * the modules depend on this file instead of on each other (store ↔ redis-store and fill ↔
 * middleware used to import each other's types).
 */
import type { StoredResponse } from './entry.js'
import type { CacheKey } from './key.js'

/** One response to write under a key: what the store's `put` is given. */
export interface EntryWrite {
  /** The request's base field, or its variant field when the response varies. */
  field: string
  /** The lock field this fill holds (checked and released by the Redis write). */
  lockField: string
  /** The lock token; without one nothing is written to Redis (the fill did not own the key). */
  token: string | undefined
  bytes: Buffer
  /** The encoded Vary record, when the response varies. */
  vary: Buffer | undefined
  lifetimeMs: number
  tags: readonly string[]
  /** The most fields of responses and Vary records the hash may hold; the oldest go first. */
  maxVariants: number
}

/** A checked `kit.invalidate()` argument. */
export type Target =
  | { kind: 'key'; ids: readonly string[] }
  | { kind: 'prefix'; prefixes: readonly string[] }
  | { kind: 'tag'; tag: string }

/** What a request found in the store. */
export interface Lookup {
  key: CacheKey
  /** `key.base`, or the variant field when the base holds a Vary record. */
  field: string
  vary: readonly string[] | undefined
  response: StoredResponse | undefined
  /** A read failed (logged once) and was taken for a miss. */
  failed: boolean
}
