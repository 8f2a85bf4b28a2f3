/**
 * Routes every call: to Redis while the kit is ready (followed by pending.ts and bounded by the
 * watchdog), else to the memory twin, journaling what Redis did not run. The state machine that
 * decides "ready" lives in manager.ts; this file only applies it to one call at a time.
 */
import type { InDoubtWrite } from '../types.js'
import { journalOf, type DualCall, type MemoryReason, type SteppedCall } from './calls.js'
import { KitError } from './errors.js'
import { isIdempotent, type JournalWrite, type OutageJournal } from './journal.js'
import type { Metrics } from './metrics.js'
import { classify } from './outage.js'
import { dataError, Pending, type PendingHost } from './pending.js'
import type { RedisClient } from './redis-types.js'
import { within, type Watchdog } from './watchdog.js'

export interface RouterHost {
  readonly watchdog: Watchdog
  readonly metrics: Metrics
  readonly journal: OutageJournal
  readonly commandTimeoutMs: number
  /** The client while the kit is on Redis; undefined while it is not; 'closed' after close(). */
  route(): RedisClient | undefined | 'closed'
  /** Whether writes are journaled (not when Redis is disabled on purpose, nor after close()). */
  journaling(): boolean
  /** A call failed because Redis is unavailable: the kit degrades. */
  failed(error: Error): void
  /** A non-idempotent write whose outcome is unknown. */
  doubted(write: InDoubtWrite): void
}

function closedError(): KitError {
  return new KitError('ERR_KIT_CLOSED', 'express-redis-kit: the kit was closed (kit.close()); close the HTTP server before the kit, so no request reaches it afterwards.')
}

export class Router implements PendingHost {
  readonly watchdog: Watchdog
  readonly metrics: Metrics

  constructor(private readonly host: RouterHost) {
    this.watchdog = host.watchdog
    this.metrics = host.metrics
  }

  /** Runs a call on Redis when it is ready, else on memory. Not `async`: one promise on the hot path. */
  run<T, R = T>(feature: string, call: DualCall<T, R>): Promise<T> {
    const client = this.host.route()
    if (client === 'closed') return Promise.reject(closedError())
    if (client === undefined) {
      try {
        return Promise.resolve(this.fromMemory(feature, call, 'not-tried'))
      } catch (error) {
        return Promise.reject(error)
      }
    }
    let sent: Promise<R>
    try {
      sent = call.redis(client)
    } catch (error) {
      return Promise.reject(dataError(error))
    }
    const pending = new Pending(this, feature, call, this.host.journal.seq)
    const answer = new Promise<T>((resolve, reject) => { pending.resolve = resolve; pending.reject = reject })
    this.watchdog.track(pending)
    sent.then((reply) => pending.ok(reply), (error: unknown) => pending.fail(error))
    return answer
  }

  /**
   * A call of several round trips (SCAN loops): each is bounded by commandTimeoutMs; on an
   * outage the memory half answers and journals what it must itself.
   */
  async runStepped<T>(call: SteppedCall<T>): Promise<T> {
    const client = this.host.route()
    if (client === 'closed') throw closedError()
    if (client === undefined) return call.memory('not-tried')
    const timeout = this.host.commandTimeoutMs
    try {
      return await call.redis(client, (roundTrip) => within(roundTrip, timeout, 'Redis'))
    } catch (error) {
      const outcome = classify(error)
      this.metrics.commandsBy[outcome === 'data' ? 'error' : outcome === 'not-run' ? 'refused' : 'outage'].add()
      if (outcome === 'data') throw dataError(error)
      this.failed(error as Error)
      return call.memory(outcome)
    }
  }

  /** Journals a feature's write directly (e.g. a clear made while Redis is away). */
  record(feature: string, write: JournalWrite): boolean {
    return this.host.journaling() && this.host.journal.record(feature, write)
  }

  failed(error: Error): void {
    this.host.failed(error)
  }

  settleUnknown<T, R>(feature: string, call: DualCall<T, R>, answer: T, seq: number, outcome: 'not-run' | 'in-doubt'): void {
    if (call.journal === undefined || !this.host.journaling()) return
    const write = journalOf(call, answer)
    if (!write) return
    if (outcome === 'not-run' || isIdempotent(write)) {
      this.host.journal.recordEarlier(feature, write, seq)
      return
    }
    if (write.op === 'incrby' || write.op === 'hits') this.host.doubted({ feature, op: write.op, key: write.key, amount: write.delta })
  }

  private fromMemory<T, R>(feature: string, call: DualCall<T, R>, reason: MemoryReason): T {
    const answer = call.memory(reason)
    if (call.journal !== undefined && this.host.journaling()) {
      const write = journalOf(call, answer)
      if (write) this.host.journal.record(feature, write)
    }
    return answer
  }
}
