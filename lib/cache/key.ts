/**
 * Cache keys. A request's id is its normalized URL (or the user's key); all Vary variants of an id
 * live in one Redis hash, so invalidating a key is one DEL and a hit on a URL without Vary is one
 * HGET. Long ids keep a readable head (for prefix invalidation) and end in a sha256.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeader } from 'node:http'
import { escapeGlob } from '../core/scan.js'

/** Ids longer than this are hashed in Redis keys. */
export const MAX_PLAIN_ID = 256
/** How much of a hashed id stays readable, so SCAN can still match a prefix. */
export const HASHED_HEAD = 128
/** Variant fields longer than this are hashed. */
const MAX_PLAIN_VARIANT = 200

export interface CacheKey {
  /** The logical key: normalized URL or the user's key. */
  id: string
  /** The full Redis key of the entry hash (kit prefix + `cache:` included). */
  redisKey: string
  /** Whether `redisKey` ends in a hash of `id` (the hash then keeps `id` in field `k`). */
  hashed: boolean
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

function nameOf(pair: string): string {
  const eq = pair.indexOf('=')
  return eq === -1 ? pair : pair.slice(0, eq)
}

/**
 * Path plus query, query parameters sorted by name (stable, so repeated names keep their order).
 * The common case, a URL without a query, is returned as is.
 */
export function normalizeUrl(url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const path = url.slice(0, q)
  const parts = url.slice(q + 1).split('&').filter((part) => part !== '')
  if (parts.length === 0) return path
  if (parts.length > 1) {
    const named = parts.map((part, index) => ({ part, index, name: nameOf(part) }))
    named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.index - b.index))
    return `${path}?${named.map((n) => n.part).join('&')}`
  }
  return `${path}?${parts[0] as string}`
}


/** Where the cache's keys live in Redis, under `<keyPrefix>cache:`. */
export class KeySpace {
  /** `<keyPrefix>cache:` */
  readonly base: string

  constructor(base: string) {
    this.base = base
  }

  entry(id: string): CacheKey {
    if (id.length <= MAX_PLAIN_ID) return { id, redisKey: `${this.base}e:${id}`, hashed: false }
    return { id, redisKey: `${this.base}h:${id.slice(0, HASHED_HEAD)}#${sha256(id)}`, hashed: true }
  }

  tag(tag: string): string {
    return tag.length <= MAX_PLAIN_ID ? `${this.base}t:${tag}` : `${this.base}t#${sha256(tag)}`
  }

  /** One SCAN pattern covering plain and hashed entry keys whose id may start with `prefix`. */
  scanPattern(prefix: string): string {
    return `${escapeGlob(this.base)}[eh]:${escapeGlob(prefix.slice(0, HASHED_HEAD))}*`
  }

  /** For a key found by `scanPattern`: its id when plain, `undefined` when hashed. */
  plainId(redisKey: string): string | undefined {
    return redisKey.startsWith(`${this.base}e:`) ? redisKey.slice(this.base.length + 2) : undefined
  }
}

/** The header names of a `Vary` value: lowercase, unique, sorted; `'*'` for `Vary: *`. */
export function parseVary(value: OutgoingHttpHeader | undefined): string[] | '*' {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : String(value)
  const names = new Set<string>()
  for (const raw of text.split(',')) {
    const name = raw.trim().toLowerCase()
    if (name === '*') return '*'
    if (name !== '') names.add(name)
  }
  return [...names].sort()
}

function headerText(value: string | string[] | undefined): string {
  if (value === undefined) return ''
  return (Array.isArray(value) ? value.join(', ') : value).trim()
}

/** The hash field holding the variant of a request for the given Vary names. */
export function variantField(names: readonly string[], headers: IncomingHttpHeaders): string {
  const field = `v:${names.map((name) => `${name}=${headerText(headers[name])}`).join('\n')}`
  return field.length <= MAX_PLAIN_VARIANT ? field : `v#${sha256(field)}`
}

/** The lock field guarding the fill of `field` (`l` for the URL itself, `lv:…` for a variant). */
export function lockFieldOf(field: string): string {
  return field === 'b' ? 'l' : `l${field}`
}
