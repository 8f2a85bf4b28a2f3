/**
 * The contract between a feature and the connection manager: one call, implemented twice.
 * The manager sends the Redis half while the kit is ready and answers with the memory half
 * otherwise, telling it why.
 */
import type { JournalWrite } from './journal.js'
import type { RedisClient } from './redis-types.js'

/**
 * Why the memory half runs:
 * - `not-tried`: the kit is not on Redis right now; the call never went there.
 * - `not-run`: it went there and Redis certainly did not run it (refused, or never sent).
 * - `in-doubt`: it went there and no answer came; Redis may still run it (or may have).
 */
export type MemoryReason = 'not-tried' | 'not-run' | 'in-doubt'

export interface DualCall<T, R = T> {
  /** The Redis command(s). Nothing after its await may touch memory: see `fromRedis`. */
  redis(client: RedisClient): Promise<R>
  /**
   * Turns Redis' reply into the answer, and refreshes the memory twin from it. Called only when
   * Redis answered in time: a reply that comes after memory already answered (the call was in
   * doubt) must not overwrite what memory did since (a delete made meanwhile, say).
   */
  fromRedis?(reply: R): T
  memory(reason: MemoryReason): T
  /**
   * The write to replay when memory answered and Redis did not run it; a function gets memory's
   * answer (for writes whose effect memory decides, e.g. a rate-limit hit opening a new window).
   * Writes whose outcome is in doubt are replayed only if applying them twice is harmless.
   */
  journal?: JournalWrite | ((answer: T) => JournalWrite | undefined)
}

/** Bounds one Redis round trip of a multi-step call by the command timeout. */
export type Step = <R>(roundTrip: Promise<R>) => Promise<R>

/** A call needing several round trips (a SCAN loop): each is bounded, not the whole. */
export interface SteppedCall<T> {
  redis(client: RedisClient, step: Step): Promise<T>
  memory(reason: MemoryReason): T
}

export function journalOf<T>(call: { journal?: DualCall<T>['journal'] }, answer: T): JournalWrite | undefined {
  return typeof call.journal === 'function' ? call.journal(answer) : call.journal
}
