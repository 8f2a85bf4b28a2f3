/**
 * Jobs as the kit answers them (`JobInfo`): from a BullMQ Job, from a job held in the outbox, or
 * from a job run in memory. One shape, so a route can `res.json()` whichever it got.
 */
import type { Job } from 'bullmq'
import type { BullJobOptions } from './options.js'
import type { JobInfo, JobState } from './types.js'

/** A job the kit has accepted but BullMQ may not have yet: what the outbox holds. */
export interface PendingJob {
  id: string
  name: string
  /** The data as JSON text, taken when add() was called (later changes to the object do not count). */
  data: string
  /** When add() was called (ms since the epoch). */
  at: number
  /** BullMQ's options, with `jobId`; `timestamp` (= `at`) once held, or with the caller's id. */
  options: BullJobOptions & { jobId: string }
  /** The id came from the caller (a duplicate is possible), not from the kit. */
  userId: boolean
  /**
   * It may have reached Redis (an add that got no answer, or a flush that was cut off). An add()
   * with the caller's id replaces a finished job of that id only while this is false: a job that
   * may already be in Redis must find itself there, not replace itself.
   */
  sent: boolean
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined || ms === 0 ? undefined : new Date(ms).toISOString()
}

let lastMs = Number.NaN
let lastIso = ''

/** `createdAt` of a job just accepted: adds come many to a millisecond under load, so the last one is kept. */
function isoOfAdd(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString()
    lastMs = ms
  }
  return lastIso
}

/** BullMQ keeps the data as JSON; a held job keeps the text it was given. */
export function parseData<D>(text: string): D {
  return JSON.parse(text) as D
}

export function infoOfBull<D, R>(queue: string, job: Job, state: JobState): JobInfo<D, R> {
  const processedAt = iso(job.processedOn)
  const finishedAt = iso(job.finishedOn)
  return {
    id: String(job.id),
    queue,
    name: job.name,
    state,
    data: job.data as D,
    progress: (job.progress ?? 0),
    attemptsMade: job.attemptsMade,
    ...(state === 'completed' ? { result: job.returnvalue as R } : {}),
    ...(job.failedReason ? { failedReason: job.failedReason } : {}),
    createdAt: new Date(job.timestamp).toISOString(),
    ...(processedAt ? { processedAt } : {}),
    ...(finishedAt ? { finishedAt } : {}),
  }
}

/** The state BullMQ gives a job it just added. */
export function addedState(options: BullJobOptions): JobState {
  if (options.delay !== undefined && options.delay > 0) return 'delayed'
  if (options.priority !== undefined && options.priority > 0) return 'prioritized'
  return 'waiting'
}

/** A job just added to BullMQ, answered without reading it back. */
export function infoOfAdded<D, R>(queue: string, job: PendingJob, data: D): JobInfo<D, R> {
  return {
    id: job.id, queue, name: job.name, state: addedState(job.options), data, progress: 0, attemptsMade: 0,
    createdAt: isoOfAdd(job.at),
  }
}

export function infoOfHeld<D, R>(queue: string, job: PendingJob): JobInfo<D, R> {
  return { ...infoOfAdded<D, R>(queue, job, parseData<D>(job.data)), state: 'held' }
}
