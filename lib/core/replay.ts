/**
 * Replay: moves the outage journal to Redis exactly once, whatever happens to the replies.
 *
 * Key effects travel in batches, each applied by ONE script that first checks and sets a marker
 * key (`<keyPrefix>kit:replay:<instance>:<seq>`, kept 24 h). A batch whose reply is lost is
 * in doubt; it is never rebuilt, only resent as the same batch with the same marker, so a copy
 * that already ran is skipped by Redis itself. A batch Redis refused before running it (OOM,
 * READONLY …) stops at the marker, which is the script's first write, so nothing of it ran.
 *
 * Order: batches go in journal order, one at a time, and the kit only goes back to Redis once
 * every batch before the last is confirmed; the last one is written to the socket in the same
 * tick as the switch, ahead of any newer command on that connection. Clears (`unlink-matching`,
 * `unlink-set`) are idempotent multi-step tasks replayed between batches, each step bounded.
 */
import { randomBytes } from 'node:crypto'
import calculateSlot from 'cluster-key-slot'
import type { Effect, KeyEffect, OutageJournal, TaskEffect } from './journal.js'
import { LuaScript } from './lua.js'
import { classify } from './outage.js'
import type { RedisClient } from './redis-types.js'
import { runTask } from './replay-tasks.js'
import { within } from './watchdog.js'

/**
 * KEYS[1] marker, KEYS[2..] one key per effect. ARGV[1] marker TTL ms, ARGV[2] now (ms), then per
 * key: base ('S' set, 'D' delete, '' none), value, expiresAt ('' none), INCRBY delta,
 * window hits, window end, PEXPIREAT ('' none), and a key whose existence cancels the set ('' none;
 * in the key's hash slot, so one node holds both). Returns {1|0 applied, failed ops, first error}.
 * Each operation runs under pcall: a key holding the wrong type fails that key, not the batch.
 */
const REPLAY = new LuaScript(`local marker = KEYS[1]
if redis.call('EXISTS', marker) == 1 then return {0, 0, ''} end
redis.call('SET', marker, '1', 'PX', ARGV[1])
local now = tonumber(ARGV[2])
local failed, first = 0, ''
local function try(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    failed = failed + 1
    if first == '' then first = reply.err end
  end
end
local a = 3
for k = 2, #KEYS do
  local key = KEYS[k]
  local base, value, expires, delta = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local hits, windowEnd, expireAt, unless = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  a = a + 8
  if base == 'D' then try('UNLINK', key)
  elseif base == 'S' and unless ~= '' and redis.call('EXISTS', unless) == 1 then
    -- cancelled: deleted for good meanwhile (a destroyed session's tombstone)
  elseif base == 'S' then
    if expires == '' then try('SET', key, value)
    else
      local px = tonumber(expires) - now
      if px > 0 then try('SET', key, value, 'PX', string.format('%d', px)) else try('UNLINK', key) end
    end
  end
  if delta ~= '0' then try('INCRBY', key, delta) end
  if hits ~= '0' then
    local left = tonumber(windowEnd) - now
    if left > 0 and tonumber(hits) > 0 then
      if redis.call('PTTL', key) <= 0 then try('SET', key, hits, 'PX', string.format('%d', left))
      else try('INCRBY', key, hits) end
    end
  end
  if expireAt ~= '' then try('PEXPIREAT', key, expireAt) end
end
return {1, failed, first}`)

/** Long enough to outlast any outage during which a batch can stay in doubt. */
const MARKER_TTL_MS = 24 * 60 * 60 * 1000
/** The write check that opens every recovery leaves only a marker that expires at once. */
const CHECK_TTL_MS = 1000
const BATCH_ENTRIES = 200
const BATCH_BYTES = 1024 * 1024
/**
 * What may be left for the last, unawaited send. Writes keep arriving during the awaited replay
 * (the kit still answers from memory), so "nothing left" never comes under steady traffic; a hot
 * set of keys re-journaled every round trip must still fit here.
 */
const FINAL_ENTRIES = 4000
const FINAL_BYTES = 8 * 1024 * 1024

interface Batch {
  kind: 'batch'
  feature: string
  marker: string
  markerTtlMs: number
  keys: string[]
  ops: string[]
  /** `sent`: a copy is on its way and its outcome unknown; `lost`: it is known not to have landed. */
  state: 'new' | 'sent' | 'lost' | 'done'
  copy: Promise<unknown> | undefined
  reply: unknown
}

interface Task {
  kind: 'task'
  feature: string
  /** One pattern clear, or several independent set clears. */
  effects: TaskEffect[]
}

type Step = Batch | Task

/** What one outage's replay did, for the single log line at recovery. */
export interface ReplayReport {
  /** Journal entries Redis confirmed. */
  applied: number
  /** Operations Redis rejected (e.g. WRONGTYPE); those writes are lost. */
  failed: number
  firstError: string | undefined
}

function opsOf(effect: KeyEffect): string[] {
  const base = effect.base
  return [
    base === undefined ? '' : base.op === 'del' ? 'D' : 'S',
    base?.op === 'set' ? base.value : '',
    base?.op === 'set' && base.expiresAt !== undefined ? String(Math.ceil(base.expiresAt)) : '',
    String(effect.delta),
    String(effect.window?.hits ?? 0),
    String(Math.ceil(effect.window?.endsAt ?? 0)),
    effect.expireAt === undefined ? '' : String(Math.ceil(effect.expireAt)),
    base?.op === 'set' ? base.unlessExists ?? '' : '',
  ]
}

export interface ReplayOptions {
  keyPrefix: string
  journal: OutageJournal
  /** How long one replay step may wait for its reply. */
  stepTimeoutMs: number
  /** On a Cluster: the hash slot of a key (batches must keep to one slot). */
  slotOf?: (key: string) => number
  /** Told how many journal entries Redis confirmed (for metrics). */
  replayed?: (entries: number) => void
}

const slotTags = new Map<number, string>()
let nextCandidate = 0

/** A short hash tag whose slot is `slot` (found by trying candidates once; cached for the process). */
function tagForSlot(slot: number): string {
  while (!slotTags.has(slot)) {
    const candidate = (nextCandidate++).toString(36)
    const found = calculateSlot(candidate)
    if (!slotTags.has(found)) slotTags.set(found, candidate)
  }
  return slotTags.get(slot) as string
}

export class Replayer {
  /** Steps taken from the journal and not yet confirmed, in order. */
  private readonly owed: Step[] = []
  private readonly instance = randomBytes(9).toString('base64url')
  private sequence = 0
  private current: ReplayReport = { applied: 0, failed: 0, firstError: undefined }
  /** Batches (and clear tasks) sent to Redis so far, resent copies included: for the replay span. */
  stepsSent = 0

  constructor(private readonly options: ReplayOptions) {}

  /** Entries still to replay: owed steps plus the journal. */
  get pending(): number {
    let owed = 0
    for (const step of this.owed) owed += step.kind === 'batch' ? step.keys.length : step.effects.length
    return owed + this.options.journal.size
  }

  /** Batches sent whose outcome is not known yet. */
  get inDoubt(): number {
    return this.owed.filter((step) => step.kind === 'batch' && step.state === 'sent').length
  }

  /** Returns and resets what has been replayed since the last call. */
  takeReport(): ReplayReport {
    const report = this.current
    this.current = { applied: 0, failed: 0, firstError: undefined }
    return report
  }

  /**
   * Proves Redis runs writes again (a Redis that refuses writes still answers PING): one empty
   * batch, whose marker expires at once. Throws as Redis does.
   */
  async checkWrites(client: RedisClient): Promise<void> {
    const marker = this.marker()
    await within(REPLAY.runInOrder(client, [marker], [CHECK_TTL_MS, Date.now()]), this.options.stepTimeoutMs, 'Write check')
  }

  /**
   * Replays owed steps and then the journal, awaiting each, until what is left can go in one
   * final batch. Throws when Redis stops answering or refuses; the step stays owed.
   */
  async drain(client: RedisClient): Promise<void> {
    for (;;) {
      if (this.owed.length === 0) {
        if (this.finishable()) return
        const steps = this.take()
        if (steps.length === 0) return
        this.owed.push(...steps)
      }
      const step = this.owed[0] as Step
      await this.run(client, step)
      if (this.owed[0] === step) this.owed.shift()
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /** Whether what is left fits in the last, unawaited batches: nothing owed, no task, little else. */
  finishable(): boolean {
    const journal = this.options.journal
    return this.owed.length === 0 && journal.size <= FINAL_ENTRIES && journal.bytes <= FINAL_BYTES && !journal.hasTasks()
  }

  /**
   * Writes the rest of the journal to the socket now, in order, so the caller can switch to Redis
   * in this same tick. `settled` reports each batch's outcome later (an error: it stays owed).
   * Returns how many entries were sent.
   */
  sendRest(client: RedisClient, settled: (copy: Promise<unknown>) => void): number {
    let sent = 0
    for (let steps = this.take(); steps.length > 0; steps = this.take()) for (const step of steps) {
      if (step.kind === 'task') { this.owed.push(step); continue } // finishable() excludes this
      this.owed.push(step)
      sent += step.keys.length
      settled(this.send(client, step).then(() => {
        this.confirm(step)
        const at = this.owed.indexOf(step)
        if (at !== -1) this.owed.splice(at, 1)
      }))
    }
    return sent
  }

  /** A new marker key; on a Cluster one in `slot`, the slot of the batch's keys. */
  private marker(slot?: number): string {
    this.sequence += 1
    const marker = `${this.options.keyPrefix}kit:replay:${this.instance}:${this.sequence}`
    if (slot === undefined || this.options.slotOf?.(marker) === slot) return marker
    return `${marker}:{${tagForSlot(slot)}}`
  }

  /**
   * The next steps from the journal: one task, or batches of key effects — on a Cluster one
   * batch per slot, since a script may only touch keys of one slot.
   */
  private take(): Step[] {
    const taken = this.options.journal.take(BATCH_ENTRIES, BATCH_BYTES)
    if (!taken) return []
    const first = taken.effects[0] as Effect
    if (first.kind === 'task') return [{ kind: 'task', feature: taken.feature, effects: taken.effects as TaskEffect[] }]
    const slotOf = this.options.slotOf
    const groups = new Map<number, KeyEffect[]>()
    for (const effect of taken.effects as KeyEffect[]) {
      const slot = slotOf ? slotOf(effect.key) : -1
      const group = groups.get(slot)
      if (group) group.push(effect)
      else groups.set(slot, [effect])
    }
    return [...groups].map(([slot, effects]) => ({
      kind: 'batch' as const, feature: taken.feature, marker: this.marker(slot === -1 ? undefined : slot), markerTtlMs: MARKER_TTL_MS,
      keys: effects.map((effect) => effect.key), ops: effects.flatMap(opsOf), state: 'new' as const, copy: undefined, reply: undefined,
    }))
  }

  private send(client: RedisClient, batch: Batch): Promise<unknown> {
    batch.state = 'sent'
    this.stepsSent += 1
    const copy = REPLAY.runInOrder(client, [batch.marker, ...batch.keys], [batch.markerTtlMs, Date.now(), ...batch.ops])
    batch.copy = copy
    // The outcome is kept even when nobody waits any more: a late reply confirms the batch.
    copy.then((reply) => {
      if (batch.copy !== copy) return
      batch.state = 'done'
      batch.reply = reply
    }, (error: unknown) => {
      if (batch.copy === copy && classify(error) !== 'data') batch.state = 'lost'
    })
    return copy
  }

  /** Counts a landed batch (its reply: applied now or by an earlier copy, and failed operations). */
  private confirm(batch: Batch): void {
    if (batch.state !== 'done') return
    batch.copy = undefined
    const [, failed, firstError] = Array.isArray(batch.reply) ? batch.reply as [unknown, unknown, unknown] : [1, 0, '']
    this.current.applied += batch.keys.length
    this.options.replayed?.(batch.keys.length)
    if (Number(failed) > 0) {
      this.current.failed += Number(failed)
      this.current.firstError ??= String(firstError)
    }
  }

  private async run(client: RedisClient, step: Step): Promise<void> {
    if (step.kind === 'task') {
      this.stepsSent += 1
      // Set clears are independent and idempotent: all of them at once, one round trip each.
      await Promise.all(step.effects.map((effect) => runTask(client, effect, this.options.stepTimeoutMs)))
      this.current.applied += step.effects.length
      this.options.replayed?.(step.effects.length)
      return
    }
    if (step.state !== 'done') {
      // A copy still waiting on a live connection is awaited, never duplicated.
      const copy = step.state === 'sent' && step.copy ? step.copy : this.send(client, step)
      try {
        await within(copy, this.options.stepTimeoutMs, 'Replay')
      } catch (error) {
        if (classify(error) !== 'data') throw error
        // Redis rejected the script as a whole (nothing of it ran): report it and move on.
        this.current.failed += step.keys.length
        this.current.firstError ??= error instanceof Error ? error.message : String(error)
        return
      }
      // The reply handler registered in send() ran first (it was attached before this await).
    }
    this.confirm(step)
  }

  /** Forgets everything owed (the kit is closing). */
  clear(): void {
    this.owed.length = 0
  }
}
