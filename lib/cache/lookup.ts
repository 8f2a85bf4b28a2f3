/**
 * Reading entries for a request: its base field, then, when that holds a Vary record, the variant
 * that the request's headers select. Shared by the middleware (first read) and by a fill that
 * polls while another instance fills the same key.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { WarningCode } from '../core/log.js'
import type { Decoded, StoredResponse } from './entry.js'
import type { EntryCache } from './entry-cache.js'
import { variantField, type CacheKey } from './key.js'
import type { CacheStore } from './store.js'
import type { Lookup } from './types.js'

type Warn = (code: WarningCode, message: string) => void

/** A read the store could not answer (logged once): a miss, counted as an `error`. */
export const READ_FAILED = Object.freeze({ kind: 'failed' as const })

export type ReadResult = Decoded | typeof READ_FAILED | undefined

/** The stored response when it is still fresh at `now`. */
export function freshResponse(decoded: ReadResult, now: number): StoredResponse | undefined {
  return decoded?.kind === 'response' && now - decoded.response.storedAt < decoded.response.ttlMs ? decoded.response : undefined
}

export class EntryReader {
  constructor(private readonly store: CacheStore, private readonly entries: EntryCache, private readonly warn: Warn) {}

  /** A field from the memory twin, synchronously: only while `store.onMemory`. */
  firstFromMemory(key: CacheKey): Decoded | undefined {
    return this.entries.read(`${key.redisKey}\u0000${key.base}`, this.store.getFromMemory(key, key.base))
  }

  /** A Redis problem must never reach the client: whatever the store cannot answer is a miss. */
  async read(key: CacheKey, field: string): Promise<ReadResult> {
    try {
      return this.entries.read(`${key.redisKey}\u0000${field}`, await this.store.get(key, field))
    } catch (error) {
      this.warn('ERR_KIT_CACHE_READ', `a cache read failed and was treated as a miss: ${(error as Error).message}`)
      return READ_FAILED
    }
  }

  /** Finds the entry for a request; `first` is its base field when the caller already read it (null = nothing). */
  async lookup(headers: IncomingHttpHeaders, key: CacheKey, first?: ReadResult | null): Promise<Lookup> {
    const decoded = first === undefined ? await this.read(key, key.base) : first ?? undefined
    const nothing: Lookup = { key, field: key.base, vary: undefined, response: undefined, failed: decoded?.kind === 'failed' }
    if (decoded === undefined || decoded.kind === 'failed') return nothing
    if (decoded.kind === 'response') return { ...nothing, response: decoded.response }
    const field = variantField(decoded.names, headers, key)
    const variant = await this.read(key, field)
    return { key, field, vary: decoded.names, response: variant?.kind === 'response' ? variant.response : undefined, failed: variant?.kind === 'failed' }
  }
}
