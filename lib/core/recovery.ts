/**
 * Recovery: probes a Redis the kit is not using, and brings the kit back when it answers well.
 *
 * - Probes PING with capped, jittered backoff, never more than one PING in flight (a hung Redis
 *   would otherwise collect them). A Redis that answers slowly (over half of commandTimeoutMs)
 *   does not count: coming back would only time out again.
 * - Three fast probes in a row (one at the first connection) start the comeback; a kit that fell
 *   back to memory within FLAP_WINDOW_MS of its last comeback needs them to span a hold-down that
 *   doubles with each flap (1 s up to 30 s) and resets once a comeback lasts.
 * - The comeback: a write check, the journal replayed batch by batch, then the last batch sent in
 *   the same tick as the switch to ready (replay.ts explains why that order is safe).
 */
import { retryDelay } from './redis-client.js'
import { isCluster, type RedisClient } from './redis-types.js'
import type { Replayer, ReplayReport } from './replay.js'
import { classify } from './outage.js'
import { publish } from './metrics.js'
import type { KitSpan, SpanAttributes } from './spans.js'
import { Tracked, within, type Watchdog } from './watchdog.js'

const GOOD_PROBES = 3
/** Pause between the probes of one run. */
const STREAK_INTERVAL_MS = 30
const FLAP_WINDOW_MS = 10_000
const FIRST_HOLD_DOWN_MS = 1000
const MAX_HOLD_DOWN_MS = 30_000

export interface RecoveryHost {
  readonly client: RedisClient
  readonly watchdog: Watchdog
  readonly replayer: Replayer
  readonly commandTimeoutMs: number
  readonly maxRetryDelayMs: number
  /** Whether the kit wants Redis back (connecting or degraded, not closed). */
  wantsRedis(): boolean
  /** The first connection: one good probe is enough. */
  initial(): boolean
  /** A reason Redis must not be used even though it answers (a database it does not have). */
  blocked(): Error | undefined
  /** Counts a probe: answered fast enough, answered slowly, or not at all. */
  probed(result: 'ok' | 'slow' | 'failed'): void
  /** Checks the server is one the kit can use (verify.ts); throws why not. */
  verify(client: RedisClient): Promise<void>
  /** The latest reason recovery did not happen, for logs and health. */
  noteError(error: unknown): void
  /**
   * Switches to Redis; called in the tick the last replay batches were sent. `awaited` is what
   * the awaited replay did, `sent` how many entries went with the last batches.
   */
  resumed(awaited: ReplayReport, sent: number, lastBatches: Promise<unknown>[]): void
  /** A replay batch sent with the switch failed on an outage. */
  failed(error: Error): void
  /** Runs `work` in a span when the kit's telemetry is on (spans.ts). */
  span<T>(name: string, attributes: SpanAttributes, work: (span: KitSpan | undefined) => Promise<T>): Promise<T>
}

/** What one comeback replayed: journal entries and the batches (or clear tasks) that carried them. */
interface Replayed {
  entries: number
  batches: number
}

export class Recovery {
  private timer: NodeJS.Timeout | undefined
  private attempt = 0
  private probing = false
  private pendingPing: Promise<unknown> | undefined
  private streak = 0
  private streakStarted = 0
  private holdDownMs = 0
  /** When the kit last came back from an outage (the first connection is not a comeback). */
  private comebackAt = Number.NEGATIVE_INFINITY
  private closed = false

  constructor(private readonly host: RecoveryHost) {}

  /** The kit stopped using Redis (from ready, or while still connecting). */
  lost(fromReady: boolean): void {
    this.streak = 0
    if (fromReady) {
      // Back on memory soon after coming back: ask for a longer run of good probes next time.
      this.holdDownMs = performance.now() - this.comebackAt < FLAP_WINDOW_MS
        ? Math.min(MAX_HOLD_DOWN_MS, this.holdDownMs === 0 ? FIRST_HOLD_DOWN_MS : this.holdDownMs * 2) : 0
    }
    this.retryLater()
  }

  /** Something failed while not on Redis: probe again after the next backoff step. */
  retryLater(): void {
    this.schedule(retryDelay(this.attempt++, this.host.maxRetryDelayMs))
  }

  /** The client (re)connected: probe at once. */
  connectionReady(): void {
    void this.probe()
  }

  /** The connection closed: a PING on it will never be answered. */
  connectionClosed(): void {
    this.pendingPing = undefined
    this.streak = 0
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.probing || this.timer !== undefined || !this.host.wantsRedis()) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.probe()
    }, delayMs)
    this.timer.unref()
  }

  private async probe(): Promise<void> {
    const { client } = this.host
    if (this.closed || this.probing || !this.host.wantsRedis()) return
    clearTimeout(this.timer)
    this.timer = undefined
    if (client.status !== 'ready') {
      // 'end' means ioredis gave up and will not reconnect by itself, also on the kit's own client:
      // a Sentinel client ends when +switch-master arrives while it asks a sentinel for the master
      // (the dead master's failover detector stays subscribed). Its 'end' event brought us here.
      if (client.status === 'end') client.connect().catch(() => {})
      return // the client's 'ready' event probes again
    }
    this.probing = true
    let next: number
    try {
      next = await this.probeOnce(client)
    } catch (error) {
      this.host.noteError(error)
      this.streak = 0
      // On a Cluster the probe's PING can be stuck on a master that hangs (its socket open) after its
      // replica took over: only a slot map refresh drops that node, failing the PING, so that the
      // next probe reaches a live master and the comeback can start.
      if (isCluster(client)) client.refreshSlotsCache()
      next = retryDelay(this.attempt++, this.host.maxRetryDelayMs)
    } finally {
      this.probing = false
    }
    if (this.host.wantsRedis()) this.schedule(next)
  }

  /** One PING; resolves the delay before the next; throws when the probe or the comeback failed. */
  private async probeOnce(client: RedisClient): Promise<number> {
    const started = performance.now()
    this.pendingPing ??= client.ping().finally(() => { this.pendingPing = undefined })
    try {
      await within(this.pendingPing, this.host.commandTimeoutMs, 'PING')
    } catch (error) {
      this.host.probed('failed')
      throw error
    }
    const now = performance.now()
    const latency = now - started
    this.host.watchdog.sample(latency, now)
    const blocked = this.host.blocked()
    if (blocked) throw blocked
    this.host.probed(latency > this.host.commandTimeoutMs / 2 ? 'slow' : 'ok')
    if (latency > this.host.commandTimeoutMs / 2) {
      this.streak = 0
      return retryDelay(this.attempt++, this.host.maxRetryDelayMs)
    }
    if (this.streak === 0) this.streakStarted = now
    this.streak += 1
    const needed = this.host.initial() ? 1 : GOOD_PROBES
    if (this.streak < needed || now - this.streakStarted < this.holdDownMs) return STREAK_INTERVAL_MS
    await this.comeback(client)
    return 0
  }

  /** Watches a batch sent with the switch like any call: a hang or a lost connection degrades the kit. */
  private watch(copy: Promise<unknown>): void {
    const { watchdog } = this.host
    const tracked = new Tracked()
    watchdog.track(tracked)
    copy.then(() => {
      watchdog.done(tracked)
      const now = performance.now()
      watchdog.sample(now - tracked.started, now)
    }, (error: unknown) => {
      watchdog.done(tracked)
      if (classify(error) !== 'data') this.host.failed(error as Error)
    })
  }

  /**
   * The comeback; with writes to replay, in a span ('express-redis-kit replay') and announced on
   * the replay diagnostics channel once the kit is back on Redis.
   */
  private async comeback(client: RedisClient): Promise<void> {
    const pending = this.host.replayer.pending
    if (pending === 0) {
      await this.switchBack(client)
      return
    }
    const started = performance.now()
    await this.host.span('express-redis-kit replay', { 'replay.pending': pending }, async (span) => {
      const replayed = await this.switchBack(client)
      if (!replayed) return
      span?.setAttribute('replay.entries', replayed.entries)
      span?.setAttribute('replay.batches', replayed.batches)
      publish('replay', () => ({ ...replayed, durationMs: performance.now() - started }))
    })
  }

  /** Write check, awaited replay, then the last batches and the switch in one tick. */
  private async switchBack(client: RedisClient): Promise<Replayed | undefined> {
    const { replayer } = this.host
    const stepsBefore = replayer.stepsSent
    try {
      await this.host.verify(client)
      await replayer.checkWrites(client)
      await replayer.drain(client)
    } catch (error) {
      this.streak = 0
      throw error
    }
    if (this.closed || client.status !== 'ready' || !this.host.wantsRedis()) return undefined
    const awaited = replayer.takeReport()
    const lastBatches: Promise<unknown>[] = []
    const sent = replayer.sendRest(client, (copy) => { lastBatches.push(copy); this.watch(copy) })
    if (!this.host.initial()) this.comebackAt = performance.now()
    this.attempt = 0
    this.streak = 0
    this.host.resumed(awaited, sent, lastBatches)
    return { entries: awaited.applied + sent, batches: replayer.stepsSent - stepsBefore }
  }
}
