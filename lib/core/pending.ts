/**
 * One call in flight on Redis, from the moment it is sent until its outcome is known — which
 * may be long after the caller got its answer (from memory, when the call got no reply in time).
 */
import type { DualCall, MemoryReason } from './calls.js'
import { KitError } from './errors.js'
import { classify, replyCode } from './outage.js'
import { listening, publish, type CommandOutcome, type Metrics } from './metrics.js'
import { Tracked, type Watchdog } from './watchdog.js'

/** What a pending call reports back to the manager. */
export interface PendingHost {
  readonly watchdog: Watchdog
  /** Counts each call's outcome (and the latency of answered ones). */
  readonly metrics: Metrics
  /** The call failed because Redis is unavailable: the kit degrades. */
  failed(error: Error): void
  /** Redis did not run the call, or it is unknown whether it did: journal or report it. */
  settleUnknown<T, R>(feature: string, call: DualCall<T, R>, answer: T, seq: number, outcome: 'not-run' | 'in-doubt'): void
}

function noop(): void {}

/** A Redis reply about the data (WRONGTYPE, …) as a KitError the caller can match on. */
export function dataError(error: unknown): unknown {
  if (replyCode(error) === 'WRONGTYPE') {
    return new KitError('ERR_KIT_WRONG_TYPE', `express-redis-kit: the key holds a different Redis type than this call works on (${(error as Error).message.split(' script:')[0]}). Use another key, or delete the old value first.`)
  }
  return error
}

export class Pending<T, R> extends Tracked {
  private answered = false
  private answer: T | undefined
  resolve: (value: T) => void = noop
  reject: (error: unknown) => void = noop

  constructor(
    private readonly host: PendingHost,
    private readonly feature: string,
    private readonly call: DualCall<T, R>,
    /** The journal's sequence when the call was sent: writes journaled later are newer. */
    private readonly seq: number,
  ) {
    super()
  }

  ok(reply: R): void {
    const watchdog = this.host.watchdog
    watchdog.done(this)
    const now = performance.now()
    watchdog.sample(now - this.started, now)
    this.count('ok', now)
    if (this.answered) return // memory answered already; its effects stand
    if (this.call.fromRedis === undefined) { this.resolve(reply as unknown as T); return }
    try {
      this.resolve(this.call.fromRedis(reply))
    } catch (error) {
      this.reject(dataError(error))
    }
  }

  fail(error: unknown): void {
    this.host.watchdog.done(this)
    const outcome = classify(error)
    this.count(outcome === 'data' ? 'error' : outcome === 'not-run' ? 'refused' : 'outage', performance.now())
    if (outcome === 'data') {
      if (!this.answered) this.reject(dataError(error))
      return
    }
    this.host.failed(error as Error)
    if (!this.answered) this.fromMemory(outcome)
    this.host.settleUnknown(this.feature, this.call, this.answer as T, this.seq, outcome)
  }

  /** The watchdog gave up waiting: memory answers now; Redis' outcome is learned later. */
  override hang(): void {
    this.count('timeout', performance.now())
    if (!this.answered) this.fromMemory('in-doubt')
  }

  /** The answer the caller got, once: a late outcome of an answered call is not counted again. */
  private count(outcome: CommandOutcome, now: number): void {
    if (this.answered) return
    const metrics = this.host.metrics
    metrics.commandsBy[outcome].add()
    if (outcome === 'ok') metrics.latency.observe((now - this.started) / 1000)
    if (listening('command')) publish('command', () => ({ feature: this.feature, outcome, durationMs: now - this.started }))
  }

  private fromMemory(reason: MemoryReason): void {
    this.answered = true
    try {
      this.answer = this.call.memory(reason)
      this.resolve(this.answer)
    } catch (error) {
      this.reject(error)
    }
  }
}
