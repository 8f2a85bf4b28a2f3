/**
 * `kit.invalidate({ key } | { prefix } | { tag })`: argument checks, and the local log that stops
 * a fill which started before an invalidation from storing the older response afterwards.
 * (Across instances the same race is closed by the fill lock kept in the entry's hash, which the
 * invalidation deletes.)
 *
 * A key or prefix is read the way request URLs are keyed (normalize.ts), for every routing an app
 * may have: `{ key: '/API/x/' }` removes `/api/x`, `/API/x` and `/API/x/` (whichever were stored),
 * with every host, query and Vary variant of them. Prefixes match in either case.
 */
import { invalidArgument } from '../core/errors.js'
import { underPrefix } from './key.js'
import { decodeUnreserved, foldings } from './normalize.js'
import { showValue } from './options.js'
import type { Target } from './types.js'

const KINDS = ['key', 'prefix', 'tag'] as const

function pathOf(url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** The ids a `{ key }` may have been stored under: as given (a custom key), and as a URL. */
export function keyIds(key: string): string[] {
  return [...new Set([key, ...(key.startsWith('/') ? foldings(pathOf(key)) : [])])]
}

/** The prefixes a `{ prefix }` covers: as given, and as a URL path (a query in it is dropped). */
export function prefixesOf(prefix: string): string[] {
  return [...new Set([prefix, ...(prefix.startsWith('/') ? [decodeUnreserved(pathOf(prefix))] : [])])]
}

export function parseTarget(target: unknown): Target {
  const usage = "pass exactly one of { key: '/path?a=1' }, { prefix: '/api/' } or { tag: 'user:42' }"
  if (typeof target !== 'object' || target === null || Array.isArray(target)) throw invalidArgument('invalidate', usage)
  const given = Object.entries(target).filter(([, value]) => value !== undefined)
  const [entry] = given
  if (given.length !== 1 || entry === undefined || !(KINDS as readonly string[]).includes(entry[0])) {
    throw invalidArgument('invalidate', `${usage}; got { ${given.map(([name]) => name).join(', ')} }`)
  }
  const [kind, value] = entry as [typeof KINDS[number], unknown]
  if (typeof value !== 'string' || value === '') {
    throw invalidArgument('invalidate', `${kind} must be a non-empty string, got ${showValue(value)}`)
  }
  switch (kind) {
    case 'key': return { kind, ids: keyIds(value) }
    case 'prefix': return { kind, prefixes: prefixesOf(value) }
    case 'tag': return { kind, tag: value }
  }
}

export function covers(target: Target, id: string, tags: readonly string[]): boolean {
  switch (target.kind) {
    case 'key': return target.ids.includes(id)
    case 'prefix': return target.prefixes.some((prefix) => underPrefix(id, prefix))
    case 'tag': return tags.includes(target.tag)
  }
}

/** The last invalidations made by this instance, numbered. */
export class InvalidationLog {
  private static readonly MAX = 1000
  private seq = 0
  private entries: { seq: number; target: Target }[] = []

  /** The number of the latest invalidation; a fill remembers it when it starts. */
  get current(): number {
    return this.seq
  }

  record(target: Target): void {
    this.seq += 1
    this.entries.push({ seq: this.seq, target })
    if (this.entries.length > InvalidationLog.MAX) this.entries = this.entries.slice(-InvalidationLog.MAX / 2)
  }

  /** Whether an invalidation made after `since` covers this entry (yes when the log forgot). */
  coversSince(since: number, id: string, tags: readonly string[]): boolean {
    if (since === this.seq) return false
    const oldest = this.entries[0]?.seq ?? this.seq + 1
    if (since + 1 < oldest) return true
    return this.entries.some((entry) => entry.seq > since && covers(entry.target, id, tags))
  }
}
