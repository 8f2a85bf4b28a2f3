/**
 * Jobs held in this process while Redis cannot take them, in the order add() accepted them, up to
 * `maxHeld`. The flush (queue.ts) takes them from the front and removes them only once BullMQ
 * answered: a job whose add got no answer stays, and is sent again with the same id — BullMQ adds
 * an id it already has only once, so a job sent twice still runs once.
 */
import type { JobInfo } from './types.js'
import type { PendingJob } from './info.js'

export interface HeldJob extends PendingJob {
  /**
   * An add() waiting for this job to reach Redis (it was queued behind a flush): given what became
   * of the job, or the error that ended its wait.
   */
  waiter?: ((outcome: JobInfo | Error) => void) | undefined
}

export class Outbox {
  private readonly jobs: HeldJob[] = []
  private readonly byId = new Map<string, HeldJob>()

  constructor(readonly max: number) {}

  get size(): number {
    return this.jobs.length
  }

  get full(): boolean {
    return this.jobs.length >= this.max
  }

  get(id: string): HeldJob | undefined {
    return this.byId.get(id)
  }

  /** Holds a job at the back; false when the outbox is full. */
  push(job: HeldJob): boolean {
    if (this.full) return false
    this.jobs.push(job)
    this.byId.set(job.id, job)
    return true
  }

  /** The oldest `count` jobs, still held. */
  front(count: number): HeldJob[] {
    return this.jobs.slice(0, count)
  }

  /** Lets go of the oldest `count` jobs (they are in Redis now, or were refused). */
  release(count: number): HeldJob[] {
    const gone = this.jobs.splice(0, count)
    for (const job of gone) this.byId.delete(job.id)
    return gone
  }

  /** Lets go of one job wherever it is (Redis refused it). */
  drop(job: HeldJob): void {
    const at = this.jobs.indexOf(job)
    if (at !== -1) this.jobs.splice(at, 1)
    this.byId.delete(job.id)
  }

  /** Empties the outbox (kit.close()), returning what was still held. */
  clear(): HeldJob[] {
    this.byId.clear()
    return this.jobs.splice(0)
  }
}
