/**
 * The outage journal: writes Redis did not run while it was unavailable, kept for replay once it
 * answers again. It is plain data (no closures), so every entry has a size and a replay can be
 * sent, resent and checked.
 *
 * - Writes to different keys commute, so each key keeps only its net effect (last SET or DEL,
 *   then the sum of increments, then rate-limit window hits, then the last expiry): the journal
 *   grows with distinct keys, not with traffic.
 * - Every feature has its own quota of entries and bytes (like the memory twin), so a flood of
 *   key-value writes cannot crowd out logins or rate counts. A write over the quota is answered
 *   from memory but not replayed; the manager warns once per outage and feature.
 * - Entries keep their first-recorded order; an `unlink-matching` clear drops the entries it
 *   supersedes and is replayed before anything recorded after it.
 */

export type JournalWrite =
  /**
   * `unlessExists`: a key in the same hash slot (a session's tombstone) whose existence cancels the
   * set when it is replayed, checked by the replay script itself, so a replayed save cannot bring
   * back what was deleted for good meanwhile.
   */
  | { op: 'set'; key: string; value: string; expiresAt: number | undefined; unlessExists?: string }
  | { op: 'del'; key: string }
  | { op: 'incrby'; key: string; delta: number }
  | { op: 'pexpireat'; key: string; at: number }
  /** Rate-limit hits in a window ending at `endsAt`; `newWindow` drops hits of an earlier window. */
  | { op: 'hits'; key: string; delta: number; newWindow: boolean; endsAt: number }
  /** Unlink every key matching the SCAN `pattern`; supersedes entries whose key starts with `covers`. */
  | { op: 'unlink-matching'; pattern: string; covers: string }
  /** Unlink the members of a set, then the set (a cache tag index). */
  | { op: 'unlink-set'; key: string }

/** Writes whose second application changes nothing: safe to resend when their outcome is unknown. */
export function isIdempotent(write: JournalWrite): boolean {
  return write.op !== 'incrby' && write.op !== 'hits'
}

export interface KeyEffect {
  kind: 'key'
  key: string
  base?: { op: 'set'; value: string; expiresAt: number | undefined; unlessExists?: string } | { op: 'del' }
  delta: number
  window?: { hits: number; endsAt: number }
  expireAt?: number
}

export interface TaskEffect {
  kind: 'task'
  op: 'unlink-matching' | 'unlink-set'
  /** The SCAN pattern or the set's key. */
  target: string
  covers: string | undefined
}

export type Effect = KeyEffect | TaskEffect

interface Entry {
  effect: Effect
  /** The journal sequence of the latest write merged into it. */
  seq: number
  bytes: number
}

function effectOf(write: JournalWrite): Effect {
  switch (write.op) {
    case 'set': {
      const base = { op: 'set' as const, value: write.value, expiresAt: write.expiresAt }
      return { kind: 'key', key: write.key, base: write.unlessExists === undefined ? base : { ...base, unlessExists: write.unlessExists }, delta: 0 }
    }
    case 'del': return { kind: 'key', key: write.key, base: { op: 'del' }, delta: 0 }
    case 'incrby': return { kind: 'key', key: write.key, delta: write.delta }
    case 'pexpireat': return { kind: 'key', key: write.key, delta: 0, expireAt: write.at }
    case 'hits': return { kind: 'key', key: write.key, delta: 0, window: { hits: write.delta, endsAt: write.endsAt } }
    case 'unlink-matching': return { kind: 'task', op: write.op, target: write.pattern, covers: write.covers }
    case 'unlink-set': return { kind: 'task', op: write.op, target: write.key, covers: undefined }
  }
}

/** The effect of applying `earlier` and then `later` to one key. */
export function compose(earlier: KeyEffect, later: KeyEffect, laterStartsWindow = false): KeyEffect {
  if (later.base) return later
  const expireAt = later.expireAt ?? earlier.expireAt
  const window = laterStartsWindow || !earlier.window ? later.window ?? earlier.window
    : later.window ? { hits: earlier.window.hits + later.window.hits, endsAt: later.window.endsAt } : earlier.window
  return {
    kind: 'key',
    key: earlier.key,
    ...(earlier.base ? { base: earlier.base } : {}),
    delta: earlier.delta + later.delta,
    ...(window ? { window } : {}),
    ...(expireAt !== undefined ? { expireAt } : {}),
  }
}

/** Approximate bytes held: UTF-16 text, as the memory twin counts it, plus a fixed overhead. */
function sizeOf(effect: Effect): number {
  if (effect.kind === 'task') return 2 * effect.target.length + 64
  const set = effect.base?.op === 'set' ? effect.base.value.length + (effect.base.unlessExists?.length ?? 0) : 0
  return 2 * (effect.key.length + set) + 64
}

/**
 * Whether two effects go in one replay step: key effects batch together; set clears (cache tag
 * invalidations) are independent of each other and go together too; a pattern clear goes alone,
 * since what comes after it must not overtake it.
 */
function sameStep(first: Effect, next: Effect): boolean {
  if (first.kind === 'key') return next.kind === 'key'
  return first.op === 'unlink-set' && next.kind === 'task' && next.op === 'unlink-set'
}

function idOf(effect: Effect): string {
  return effect.kind === 'key' ? `k\0${effect.key}` : `${effect.op}\0${effect.target}`
}

export interface JournalLimits {
  maxEntries: number
  maxBytes: number
}

/** One feature's share of the journal. */
class FeatureJournal {
  readonly entries = new Map<string, Entry>()
  bytes = 0

  constructor(readonly feature: string, readonly limits: JournalLimits) {}

  fits(id: string, bytes: number): boolean {
    const existing = this.entries.get(id)
    const entries = this.entries.size + (existing ? 0 : 1)
    return entries <= this.limits.maxEntries && this.bytes - (existing?.bytes ?? 0) + bytes <= this.limits.maxBytes
  }

  set(id: string, entry: Entry): void {
    const existing = this.entries.get(id)
    this.bytes += entry.bytes - (existing?.bytes ?? 0)
    this.entries.set(id, entry)
  }

  delete(id: string): void {
    const existing = this.entries.get(id)
    if (!existing) return
    this.bytes -= existing.bytes
    this.entries.delete(id)
  }
}

/** What replay takes out of the journal: one feature's effects, oldest first. */
export interface Taken {
  feature: string
  effects: Effect[]
  bytes: number
}

export class OutageJournal {
  private readonly features = new Map<string, FeatureJournal>()
  private sequence = 0
  private nextFeature = 0

  constructor(
    private readonly limits: JournalLimits,
    private readonly onFull: (feature: string, key: string) => void,
  ) {}

  /** The sequence number of the latest write recorded (a call remembers it when it is sent). */
  get seq(): number {
    return this.sequence
  }

  get size(): number {
    let size = 0
    for (const journal of this.features.values()) size += journal.entries.size
    return size
  }

  get bytes(): number {
    let bytes = 0
    for (const journal of this.features.values()) bytes += journal.bytes
    return bytes
  }

  /** Pending entries and bytes per feature. */
  usage(): Record<string, { entries: number; bytes: number }> {
    const out: Record<string, { entries: number; bytes: number }> = {}
    for (const [name, journal] of this.features) out[name] = { entries: journal.entries.size, bytes: journal.bytes }
    return out
  }

  /** Records a write Redis did not run; false when the feature's quota is full (then it is not kept). */
  record(feature: string, write: JournalWrite): boolean {
    this.sequence += 1
    return this.merge(this.of(feature), effectOf(write), write.op === 'hits' && write.newWindow, this.sequence, false)
  }

  /**
   * Records a write sent at `issuedSeq` whose outcome turned out unknown, underneath what was
   * recorded since: a later write to the key, or a later clear covering it, wins over it.
   */
  recordEarlier(feature: string, write: JournalWrite, issuedSeq: number): boolean {
    const journal = this.of(feature)
    const effect = effectOf(write)
    if (effect.kind === 'key') {
      for (const entry of journal.entries.values()) {
        const e = entry.effect
        if (entry.seq > issuedSeq && e.kind === 'task' && e.covers !== undefined && effect.key.startsWith(e.covers)) return true
      }
    }
    return this.merge(journal, effect, false, issuedSeq, true)
  }

  private of(feature: string): FeatureJournal {
    let journal = this.features.get(feature)
    if (!journal) {
      journal = new FeatureJournal(feature, this.limits)
      this.features.set(feature, journal)
    }
    return journal
  }

  private merge(journal: FeatureJournal, effect: Effect, startsWindow: boolean, seq: number, underneath: boolean): boolean {
    const id = idOf(effect)
    const existing = journal.entries.get(id)
    let merged: Effect = effect
    if (existing?.effect.kind === 'key' && effect.kind === 'key') {
      merged = underneath ? compose(effect, existing.effect) : compose(existing.effect, effect, startsWindow)
    }
    if (effect.kind === 'task' && effect.covers !== undefined) {
      // The entries a clear supersedes go first, which also frees their room for the clear.
      const covers = effect.covers
      for (const [otherId, entry] of journal.entries) {
        if (entry.effect.kind === 'key' && entry.effect.key.startsWith(covers)) journal.delete(otherId)
      }
      // A clear replays after everything recorded before it: re-insert it at the end.
      journal.delete(id)
    }
    const bytes = sizeOf(merged)
    if (!journal.fits(id, bytes)) {
      this.onFull(journal.feature, effect.kind === 'key' ? effect.key : effect.target)
      return false
    }
    journal.set(id, { effect: merged, seq: Math.max(seq, existing?.seq ?? 0), bytes })
    return true
  }

  /**
   * Removes and returns up to `maxEntries` effects / `maxBytes` of one feature, oldest first,
   * stopping before a task when key effects were taken (a task is replayed on its own).
   */
  take(maxEntries: number, maxBytes: number): Taken | undefined {
    // Round-robin over features: one whose writes keep coming cannot starve the others.
    const features = [...this.features.values()]
    for (let i = 0; i < features.length; i++) {
      const journal = features[(this.nextFeature + i) % features.length] as FeatureJournal
      if (journal.entries.size === 0) continue
      this.nextFeature = (this.nextFeature + i + 1) % features.length
      const effects: Effect[] = []
      let bytes = 0
      for (const [id, entry] of journal.entries) {
        const first = effects[0]
        if (first && (effects.length >= maxEntries || bytes + entry.bytes > maxBytes || !sameStep(first, entry.effect))) break
        effects.push(entry.effect)
        bytes += entry.bytes
        journal.delete(id)
      }
      return { feature: journal.feature, effects, bytes }
    }
    return undefined
  }

  /** Whether a clear is waiting (it needs several round trips, so it cannot end a replay). */
  hasTasks(): boolean {
    for (const journal of this.features.values()) {
      for (const entry of journal.entries.values()) if (entry.effect.kind === 'task') return true
    }
    return false
  }

  /** Drops everything (the kit was closed, or Redis is disabled). */
  clear(): void {
    this.features.clear()
  }
}
