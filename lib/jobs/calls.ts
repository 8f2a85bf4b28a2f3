/**
 * The queue's calls in the kit's dual-call shape: a Redis half (BullMQ on the kit's own, fail-fast
 * connection) and a memory half. The connection manager picks one and bounds the Redis half by
 * `commandTimeoutMs`, so an add() never waits longer — also when Redis was never reachable, where
 * BullMQ alone would wait for it forever.
 */
import type { MemoryReason } from '../core/calls.js'
import { KitError } from '../core/errors.js'
import type { JobInfo, QueueHealth } from './types.js'
import type { PendingJob } from './info.js'
import type { HeldJob } from './outbox.js'

/** What became of one job sent to BullMQ: the answer, and whether it is a new job in Redis (not one already using its id). */
export interface Placed {
  info: JobInfo
  added: boolean
}

/** What the calls need from their queue (queue.ts). */
export interface CallHost {
  /** Adds one job to BullMQ and answers what became of it (a duplicate, a replaced finished job …). */
  place(job: PendingJob, data: unknown): Promise<Placed>
  /** Counts a job add() put into Redis, once Redis answered in time (a late answer is counted by the flush). */
  added(id: string): void
  /** Redis cannot take the job: the queue's `onRedisDown` policy answers. */
  whileDown(job: PendingJob, reason: MemoryReason): JobInfo
  /** Adds held jobs to BullMQ, in order, with their ids. */
  placeHeld(jobs: readonly HeldJob[]): Promise<JobInfo[]>
  read(id: string): Promise<JobInfo | undefined>
  counts(): Promise<Omit<QueueHealth, 'held' | 'local' | 'workers'>>
  /** For messages. */
  readonly name: string
}

export class AddCall {
  constructor(private readonly host: CallHost, private readonly job: PendingJob, private readonly data: unknown) {}
  redis(): Promise<Placed> {
    return this.host.place(this.job, this.data)
  }
  fromRedis(placed: Placed): JobInfo {
    if (placed.added) this.host.added(this.job.id)
    return placed.info
  }
  memory(reason: MemoryReason): JobInfo {
    return this.host.whileDown(this.job, reason)
  }
}

/** One batch of held jobs; the memory half keeps them held (undefined: try again after the next comeback). */
export class FlushCall {
  constructor(private readonly host: CallHost, private readonly jobs: readonly HeldJob[]) {}
  redis(): Promise<JobInfo[] | undefined> {
    return this.host.placeHeld(this.jobs)
  }
  memory(): JobInfo[] | undefined {
    return undefined
  }
}

export class ReadCall {
  constructor(private readonly host: CallHost, private readonly id: string) {}
  redis(): Promise<JobInfo | undefined> {
    return this.host.read(this.id)
  }
  memory(): JobInfo | undefined {
    throw unavailableToRead(this.host.name)
  }
}

export const NO_COUNTS = { waiting: null, active: null, delayed: null, failed: null, completed: null } as const

export class CountsCall {
  constructor(private readonly host: CallHost) {}
  redis(): Promise<Omit<QueueHealth, 'held' | 'local' | 'workers'>> {
    return this.host.counts()
  }
  memory(): Omit<QueueHealth, 'held' | 'local' | 'workers'> {
    return { ...NO_COUNTS }
  }
}

function unavailableToRead(queue: string): Error {
  return queueUnavailable(queue, 'cannot read jobs while Redis is unavailable (only jobs held or run by this process are known); '
    + 'answer 503 with Retry-After and let the client ask again')
}


export function queueUnavailable(queue: string, problem: string): KitError {
  return new KitError('ERR_KIT_QUEUE_UNAVAILABLE', `express-redis-kit: queue '${queue}' ${problem}.`)
}
