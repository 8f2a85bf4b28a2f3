/**
 * The outage journal: writes made while Redis is unreachable, kept per key and replayed once it
 * answers again. Writes to different keys commute, so each key keeps only its net effect
 * (last SET or DEL, then the sum of increments, then the last EXPIRE); the journal is bounded by
 * distinct keys, not by traffic. Sessions and cache invalidations reuse the same entries.
 */
import type { RedisClient } from './redis-types.js'

/** What replay does to one key, in this order: base write, INCRBY delta, PEXPIREAT. */
export interface KeyEffect {
  kind: 'key'
  /** The full Redis key (kit prefix and feature namespace included). */
  key: string
  base?: { op: 'set'; value: string; expiresAt: number | undefined } | { op: 'del' }
  delta: number
  expireAt?: number
}

/** A feature-defined write replayed by its own function (e.g. a cache tag invalidation). */
export interface CustomEffect {
  kind: 'custom'
  /** Entries with the same id replace each other. */
  id: string
  replay: (redis: RedisClient) => Promise<unknown>
}

export type JournalEntry = KeyEffect | CustomEffect

/** Queues the commands of one key's replay; the manager sends them as one MULTI. */
export interface ReplayBatch {
  set(key: string, value: string, ttlMs: number | undefined): void
  del(key: string): void
  incrby(key: string, delta: number): void
  pexpireat(key: string, at: number): void
}

export type Write =
  | { op: 'set'; key: string; value: string; expiresAt: number | undefined }
  | { op: 'del'; key: string }
  | { op: 'incrby'; key: string; delta: number }
  | { op: 'pexpireat'; key: string; at: number }

function effectOf(write: Write): KeyEffect {
  switch (write.op) {
    case 'set': return { kind: 'key', key: write.key, base: { op: 'set', value: write.value, expiresAt: write.expiresAt }, delta: 0 }
    case 'del': return { kind: 'key', key: write.key, base: { op: 'del' }, delta: 0 }
    case 'incrby': return { kind: 'key', key: write.key, delta: write.delta }
    case 'pexpireat': return { kind: 'key', key: write.key, delta: 0, expireAt: write.at }
  }
}

/** The effect of applying `earlier` and then `later` to the same key. */
export function compose(earlier: KeyEffect, later: KeyEffect): KeyEffect {
  if (later.base) return later
  const expireAt = later.expireAt ?? earlier.expireAt
  return {
    kind: 'key',
    key: earlier.key,
    ...(earlier.base ? { base: earlier.base } : {}),
    delta: earlier.delta + later.delta,
    ...(expireAt !== undefined ? { expireAt } : {}),
  }
}

export class OutageJournal {
  private entries = new Map<string, JournalEntry>()
  private readonly maxEntries: number
  private readonly onOverflow: (dropped: string) => void

  constructor(maxEntries: number, onOverflow: (dropped: string) => void) {
    this.maxEntries = maxEntries
    this.onOverflow = onOverflow
  }

  get size(): number {
    return this.entries.size
  }

  record(write: Write): void {
    this.merge(effectOf(write))
  }

  recordCustom(id: string, replay: CustomEffect['replay']): void {
    this.put(`custom\0${id}`, { kind: 'custom', id, replay })
  }

  /** Drops the key entries a later write makes pointless (a clear of their whole prefix). */
  forget(superseded: (key: string) => boolean): void {
    for (const [id, entry] of this.entries) {
      if (entry.kind === 'key' && superseded(entry.key)) this.entries.delete(id)
    }
  }

  /** Removes and returns everything recorded so far, oldest key first. */
  take(): JournalEntry[] {
    const taken = [...this.entries.values()]
    this.entries = new Map()
    return taken
  }

  /** Puts back entries whose replay failed, underneath anything recorded since. */
  restore(entries: readonly JournalEntry[]): void {
    const newer = this.entries
    this.entries = new Map()
    for (const entry of entries) this.put(idOf(entry), entry)
    for (const entry of newer.values()) {
      if (entry.kind === 'key') this.merge(entry)
      else this.put(idOf(entry), entry)
    }
  }

  private merge(effect: KeyEffect): void {
    const id = idOf(effect)
    const existing = this.entries.get(id)
    if (existing?.kind === 'key') this.entries.set(id, compose(existing, effect))
    else this.put(id, effect)
  }

  private put(id: string, entry: JournalEntry): void {
    if (!this.entries.has(id) && this.entries.size >= this.maxEntries) {
      this.onOverflow(entry.kind === 'key' ? entry.key : entry.id)
      return
    }
    this.entries.set(id, entry)
  }
}

function idOf(entry: JournalEntry): string {
  return entry.kind === 'key' ? `key\0${entry.key}` : `custom\0${entry.id}`
}

/** Queues one key's net effect; sent as one MULTI, so a key is never half-replayed. */
export function queueReplay(entry: KeyEffect, batch: ReplayBatch, now = Date.now()): void {
  const { key, base, delta, expireAt } = entry
  if (base?.op === 'del') batch.del(key)
  if (base?.op === 'set') {
    const ttlMs = base.expiresAt === undefined ? undefined : base.expiresAt - now
    if (ttlMs !== undefined && ttlMs <= 0) batch.del(key)
    else batch.set(key, base.value, ttlMs)
  }
  if (delta !== 0) batch.incrby(key, delta)
  if (expireAt !== undefined) batch.pexpireat(key, expireAt)
}
