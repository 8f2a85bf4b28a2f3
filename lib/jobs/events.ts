/**
 * What one queue counts (issue 15): each job event on the kit's metrics (`jobs_total`, labelled
 * by the queue's name as the app gave it, so the label stays bounded) and on the
 * `express-redis-kit:job` diagnostics channel. One counter increment per event on the hot path;
 * the channel message is only built while someone subscribes.
 *
 * - `added`: add() put the job into Redis (not when it answered with the job already using its id).
 * - `held`: add() kept the job in this process's outbox (Redis unavailable, or no answer in time).
 * - `flushed`: a held job reached Redis once it was back.
 * - `completed` / `failed`: an attempt finished, from Redis or from memory (a failed attempt may be retried).
 */
import { listening, publish, type Metrics, type Series } from '../core/metrics.js'

export type JobEvent = 'added' | 'held' | 'flushed' | 'completed' | 'failed'

export class JobCounters {
  /** Each event's series, bound on first use (so `kit.stats()` lists the events that happened). */
  private readonly series: Partial<Record<JobEvent, Series>> = {}

  constructor(private readonly metrics: Metrics, readonly queue: string) {}

  /** One job's event. */
  count(event: JobEvent, id: string): void {
    const series = this.series[event] ?? (this.series[event] = this.metrics.jobs.bind({ queue: this.queue, event }))
    series.add()
    if (listening('job')) publish('job', () => ({ queue: this.queue, event, id }))
  }
}
