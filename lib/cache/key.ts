/**
 * Cache keys. A request's id is its folded path (or the user's key); every entry of an id — each
 * origin, spelling, query and Vary variant — lives in one Redis hash, so invalidating an id is one
 * UNLINK, a hit is one HGET, and the variant cap of a path is one script on one slot. Long ids keep
 * a readable head (for prefix invalidation) and end in a sha256.
 *
 * Fields are JSON arrays, so no value can be mistaken for another:
 *   ["b", origin, spelling, query]         the response, or the Vary record naming its headers
 *   ["v:<name>=<value>…", origin, …]        one Vary variant of that response
 *   l[…]                                    the refill lock of the field after the `l`
 *   k                                       the full id, when the Redis key had to be hashed
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeader } from 'node:http'
import { escapeGlob } from '../core/scan.js'

/** Ids longer than this are hashed in Redis keys. */
export const MAX_PLAIN_ID = 256
/** How much of a hashed id stays readable, so SCAN can still match a prefix. */
export const HASHED_HEAD = 128
/** Variant names and values longer than this are hashed. */
const MAX_PLAIN_VARIANT = 200
/** Scopes (origin, spelling, query) longer than this are hashed. */
const MAX_PLAIN_SCOPE = 512

export interface CacheKey {
  /** The logical key: folded path or the user's key (what invalidation matches). */
  id: string
  /** The full Redis key of the entry hash (kit prefix + `cache:` included). */
  redisKey: string
  /** Whether `redisKey` ends in a hash of `id` (the hash then keeps `id` in field `k`). */
  hashed: boolean
  /** The JSON tail `"origin","spelling","query"]` shared by this request's fields. */
  scope: string
  /** The field of this request's response or Vary record: `["b",` + scope. */
  base: string
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** Whether JSON.stringify would escape something in `text`: a quote, a backslash, a control character, a surrogate. */
function needsEscape(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return true
  }
  return false
}

/** JSON.stringify(text), without its cost for the usual text that needs no escape (every hit builds a scope). */
function quote(text: string): string {
  return needsEscape(text) ? JSON.stringify(text) : `"${text}"`
}

/**
 * The scope of a request within its id's hash: the JSON array tail `"origin","spelling","query"]`;
 * `NO_SCOPE` for targets that name a whole id.
 */
export function scopeOf(origin: string, spelling: string, query: string): string {
  const scope = `${quote(origin)},${quote(spelling)},${quote(query)}]`
  return scope.length <= MAX_PLAIN_SCOPE ? scope : `"#${sha256(scope)}"]`
}

export const NO_SCOPE = scopeOf('', '', '')

/** Escapes SCAN glob characters, and matches letters in either case. */
function caselessGlob(text: string): string {
  let out = ''
  for (const char of escapeGlob(text)) {
    const lower = char.toLowerCase()
    const upper = char.toUpperCase()
    out += lower === upper ? char : `[${lower}${upper}]`
  }
  return out
}

/** Where the cache's keys live in Redis, under `<keyPrefix>cache:`. */
export class KeySpace {
  /** `<keyPrefix>cache:` */
  readonly base: string
  /** Whether `base` holds a Cluster hash tag (then every key of the cache shares one slot). */
  private readonly taggedBase: boolean

  constructor(base: string) {
    this.base = base
    // Redis' rule: the first `{`, then the first `}` after it, with something in between.
    const open = base.indexOf('{')
    this.taggedBase = open !== -1 && base.indexOf('}', open + 1) > open + 1
  }

  /**
   * The hash of an id. Ids with braces are hashed, so no id can bring its own Cluster hash tag and
   * the index (`index()`) always lands in the same slot as the hash.
   */
  entry(id: string, scope: string = NO_SCOPE): CacheKey {
    const base = `["b",${scope}`
    if (id.length <= MAX_PLAIN_ID && !/[{}]/.test(id)) return { id, redisKey: `${this.base}e:${id}`, hashed: false, scope, base }
    const head = id.slice(0, HASHED_HEAD).replace(/[{}]/g, '_')
    return { id, redisKey: `${this.base}h:${head}#${sha256(id)}`, hashed: true, scope, base }
  }

  /** The sorted set of a hash's fields by age (the variant cap), in the hash's Cluster slot. */
  index(redisKey: string): string {
    return this.taggedBase ? `${this.base}n:${redisKey.slice(this.base.length)}` : `${this.base}n:{${redisKey}}`
  }

  tag(tag: string): string {
    return tag.length <= MAX_PLAIN_ID ? `${this.base}t:${tag}` : `${this.base}t#${sha256(tag)}`
  }

  /**
   * One SCAN pattern covering plain and hashed entry keys whose id may start with `prefix`, in
   * either case (an app's case-insensitive routing stores lowercase ids; removing more is harmless).
   */
  scanPattern(prefix: string): string {
    return `${escapeGlob(this.base)}[eh]:${caselessGlob(prefix.slice(0, HASHED_HEAD)).replace(/[{}]/g, '?')}*`
  }

  /** Whether SCAN matches for `prefix` must be checked against the full id (field `k`). */
  static needsCheck(prefix: string): boolean {
    return prefix.length > HASHED_HEAD || /[{}]/.test(prefix)
  }

  /** For a key found by `scanPattern`: its id when plain, `undefined` when hashed. */
  plainId(redisKey: string): string | undefined {
    return redisKey.startsWith(`${this.base}e:`) ? redisKey.slice(this.base.length + 2) : undefined
  }
}

/** Prefix matching as invalidation does it everywhere: case-insensitive. */
export function underPrefix(id: string, prefix: string): boolean {
  return id.length >= prefix.length && id.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase()
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

/** The hash field holding this request's variant for the given Vary names. */
export function variantField(names: readonly string[], headers: IncomingHttpHeaders, key: Pick<CacheKey, 'scope'>): string {
  const variant = `v:${names.map((name) => `${name}=${headerText(headers[name])}`).join('\n')}`
  return `[${JSON.stringify(variant.length <= MAX_PLAIN_VARIANT ? variant : `v#${sha256(variant)}`)},${key.scope}`
}

/** The lock field guarding the fill of `field`. */
export function lockFieldOf(field: string): string {
  return `l${field}`
}
