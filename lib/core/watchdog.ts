/**
 * The watchdog bounds every call the kit sends to Redis, whatever the client does with it
 * (auto-pipelining holds a batch until the one before it is answered, and ioredis' own timer
 * only starts when a command is written). Two verdicts end a wait:
 *
 * - stalled: calls are waiting and no reply has arrived for longer than recent latency makes
 *   plausible (Jacobson/Karels: smoothed latency + 4 × its deviation; twice the slowest recent
 *   reply; never below `floorMs`, 100 ms). A Redis that hangs under load is noticed in about a
 *   third of the default timeout, while a burst a loaded machine takes 60–90 ms to answer is not
 *   taken for a hang (measured: with a 50 ms floor it was, under 100 concurrent cache fills).
 * - too slow: the oldest call has waited `ceilingMs` (commandTimeoutMs), replies or not.
 *
 * A stall of this process (GC, a long synchronous task) must not read as a Redis stall: replies
 * may be sitting unread in the socket. So a verdict is confirmed once more after the event loop
 * has polled for I/O (setImmediate runs after the poll phase) before any call is given up.
 */
import { HangError } from './outage.js'

/**
 * One call in flight. `hang` answers it without Redis. The watchdog links tracked calls in the
 * order they started (oldest first) and unlinks each as it settles, so nothing settled is kept.
 */
export class Tracked {
  readonly started = performance.now()
  /** @internal list links, owned by the watchdog */
  prev: Tracked | undefined = undefined
  /** @internal */
  next: Tracked | undefined = undefined
  /** @internal */
  linked = false

  hang(): void {}
}

export type Verdict = 'stalled' | 'too-slow'

const PEAK_HALF_LIFE_MS = 5000

export class Watchdog {
  private head: Tracked | undefined
  private tail: Tracked | undefined
  private timer: NodeJS.Timeout | undefined
  private confirming = false
  private srtt = 0
  private rttvar = 0
  private sampled = false
  private lastReply = 0
  /** The slowest recent reply, decaying by half every PEAK_HALF_LIFE_MS. */
  private peak = 0
  private peakAt = 0

  constructor(
    private readonly floorMs: number,
    private readonly ceilingMs: number,
    private readonly onHang: (verdict: Verdict, waitedMs: number) => void,
  ) {}

  /**
   * How long without any reply counts as a stall right now: never below the floor, nor below
   * twice the slowest recent reply (a Redis that just took 60 ms for a burst is not hung at 70),
   * nor below smoothed latency + 4 deviations.
   */
  get stallAfterMs(): number {
    if (!this.sampled) return this.ceilingMs
    const peak = this.peak * 0.5 ** ((performance.now() - this.peakAt) / PEAK_HALF_LIFE_MS)
    return Math.min(this.ceilingMs, Math.max(this.floorMs, this.srtt + 4 * this.rttvar, 2 * peak))
  }

  /** Smoothed latency of recent replies, in ms (0 before the first). */
  get latencyMs(): number {
    return this.srtt
  }

  /** Feeds one reply's latency into the model (also used for probes). */
  sample(ms: number, now: number): void {
    this.lastReply = now
    const peak = this.peak * 0.5 ** ((now - this.peakAt) / PEAK_HALF_LIFE_MS)
    if (ms >= peak) { this.peak = ms; this.peakAt = now }
    if (!this.sampled) {
      this.sampled = true
      this.srtt = ms
      this.rttvar = ms / 2
      return
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms)
    this.srtt = 0.875 * this.srtt + 0.125 * ms
  }

  track(call: Tracked): void {
    call.linked = true
    call.prev = this.tail
    if (this.tail) this.tail.next = call
    else this.head = call
    this.tail = call
    if (this.timer === undefined && !this.confirming) this.arm(call.started)
  }

  /** The call settled (Redis answered, or failed): it no longer counts. */
  done(call: Tracked): void {
    if (!call.linked) return
    call.linked = false
    if (call.prev) call.prev.next = call.next
    else this.head = call.next
    if (call.next) call.next.prev = call.prev
    else this.tail = call.prev
    call.prev = undefined
    call.next = undefined
  }

  /** Forgets every call (the kit stopped using Redis for them). */
  clear(): void {
    for (let call = this.head; call; call = call.next) call.linked = false
    this.head = undefined
    this.tail = undefined
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private arm(oldestStarted: number): void {
    const now = performance.now()
    const since = Math.max(oldestStarted, this.lastReply)
    const due = Math.min(oldestStarted + this.ceilingMs, since + this.stallAfterMs)
    this.timer = setTimeout(this.check, Math.max(1, Math.ceil(due - now)))
    this.timer.unref()
  }

  private verdict(oldest: Tracked, now: number): Verdict | undefined {
    if (now - oldest.started >= this.ceilingMs) return 'too-slow'
    if (now - Math.max(oldest.started, this.lastReply) >= this.stallAfterMs) return 'stalled'
    return undefined
  }

  private readonly check = (): void => {
    this.timer = undefined
    const oldest = this.head
    if (!oldest) return
    if (this.verdict(oldest, performance.now()) === undefined) { this.arm(oldest.started); return }
    // Let the event loop poll the socket first: the replies may already be here.
    this.confirming = true
    setImmediate(this.confirm)
  }

  private readonly confirm = (): void => {
    this.confirming = false
    const oldest = this.head
    if (!oldest) return
    const now = performance.now()
    const verdict = this.verdict(oldest, now)
    if (verdict === undefined) { this.arm(oldest.started); return }
    const waiting: Tracked[] = []
    for (let call = this.head; call; call = call.next) waiting.push(call)
    this.clear()
    this.onHang(verdict, now - oldest.started)
    for (const call of waiting) call.hang()
  }
}

/**
 * Waits for `promise` at most `ms`, then (after one more I/O poll, see above) rejects with a
 * HangError. The promise itself goes on: its outcome can still be learned later.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (!settled) { settled = true; reject(new HangError(`${what} timed out after ${ms} ms (no reply)`)) }
      })
    }, ms)
    timer.unref()
    promise.then(
      (value) => { if (!settled) { settled = true; clearTimeout(timer); resolve(value) } },
      (error: unknown) => { if (!settled) { settled = true; clearTimeout(timer); reject(error) } },
    )
  })
}
