/**
 * `kit.queue()`, `queue.add()` and `kit.worker()` options, read once through the kit's options
 * layer into fully-required configs: unknown names get a "Did you mean", bad values name the fix.
 * Job ids and data are checked here too, so a job BullMQ would refuse fails at `add()` in every
 * state of the kit — not later, when a held job is flushed.
 */
import { randomUUID } from 'node:crypto'
import type { KeepJobs as BullKeepJobs } from 'bullmq'
import { invalidArgument, KitError } from '../core/errors.js'
import { Options, show } from '../core/options.js'
import type { AddOptions, Backoff, JobSettings, KeepJobs, QueueDownPolicy, QueueOptions, WorkerOptions } from './types.js'

export interface QueueConfig {
  onRedisDown: QueueDownPolicy
  maxHeld: number
  prefix: string
  /** Every job's defaults, for BullMQ's `defaultJobOptions`. */
  defaults: BullJobOptions
}

export interface WorkerConfig {
  concurrency: number
  lockDuration: number
  stalledInterval: number
  maxStalledCount: number
  closeTimeoutMs: number
}

/** What one add() hands to BullMQ (its JobsOptions, the subset the kit passes). */
export interface BullJobOptions {
  jobId?: string
  delay?: number
  priority?: number
  lifo?: boolean
  attempts?: number
  backoff?: Backoff
  removeOnComplete?: boolean | number | BullKeepJobs
  removeOnFail?: boolean | number | BullKeepJobs
  /** When add() was called: a held job keeps its place in time (delays count from here). */
  timestamp?: number
}

const SETTINGS: readonly (keyof JobSettings)[] = ['attempts', 'backoff', 'removeOnComplete', 'removeOnFail']
const QUEUE_OPTIONS: readonly string[] = ['onRedisDown', 'maxHeld', 'prefix', ...SETTINGS]
const ADD_OPTIONS: readonly string[] = ['jobId', 'delay', 'priority', 'lifo', ...SETTINGS]
const WORKER_OPTIONS: readonly string[] = ['concurrency', 'lockDuration', 'stalledInterval', 'maxStalledCount', 'closeTimeoutMs']
/** Names from BullMQ and other queues that mean one of ours. */
const ALIASES: Readonly<Record<string, string>> = { id: 'jobId', retries: 'attempts', maxAttempts: 'attempts', keepCompleted: 'removeOnComplete', keepFailed: 'removeOnFail' }
const POLICIES: readonly QueueDownPolicy[] = ['hold', 'run-local', 'reject']
const PRIORITY_LIMIT = 2 ** 21
/** Queue names: what BullMQ and a Redis key part accept (no ':'), braces for a Cluster hash tag. */
const QUEUE_NAME = /^[\w.{}-]{1,100}$/
const PREFIX = /^[\w.{}-]{1,100}$/

/** The kit's defaults for finished jobs: kept long enough to read results and to de-duplicate retried adds. */
export const KEEP_COMPLETED = { age: 86_400, count: 1000 }
export const KEEP_FAILED = { age: 604_800, count: 5000 }

function parseKeep(options: Options, value: unknown, name: string): boolean | number | BullKeepJobs | undefined {
  if (value === undefined || typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    options.known(value, ['age', 'count'], {}, `${name}.`)
    const keep = value as KeepJobs
    const age = keep.age === undefined ? undefined : options.integer(keep.age, `${name}.age`, 0, 0)
    const count = keep.count === undefined ? undefined : options.integer(keep.count, `${name}.count`, 0, 0)
    if (age !== undefined) return count === undefined ? { age } : { age, count }
    if (count !== undefined) return { count }
  }
  return options.fail(name, `is ${show(value)}`, 'Use true (remove at once), false (keep all), a count, or { age: seconds, count }.')
}

function parseBackoff(options: Options, value: unknown): Backoff | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'number') return options.milliseconds(value, 'backoff', 0, true)
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    options.known(value, ['type', 'delay', 'jitter'], {}, 'backoff.')
    const given = value as { type?: unknown; delay?: unknown; jitter?: unknown }
    const type = options.oneOf(given.type, 'backoff.type', ['fixed', 'exponential'] as const, 'fixed', "Use 'fixed' or 'exponential'.")
    const delay = options.milliseconds(given.delay, 'backoff.delay', 1000, true)
    if (given.jitter !== undefined && (typeof given.jitter !== 'number' || !(given.jitter >= 0 && given.jitter <= 1))) {
      options.fail('backoff.jitter', `is ${show(given.jitter)}`, 'Use a number from 0 to 1.')
    }
    return { type, delay, ...(given.jitter !== undefined ? { jitter: given.jitter } : {}) }
  }
  return options.fail('backoff', `is ${show(value)}`, "Use milliseconds, or { type: 'exponential', delay: 1000 }.")
}

/** The job settings both queue and add() accept, without the undefined ones. */
function parseSettings(options: Options, given: Readonly<Partial<JobSettings>>): BullJobOptions {
  const out: BullJobOptions = {}
  if (given.attempts !== undefined) out.attempts = options.integer(given.attempts, 'attempts', 1)
  const backoff = parseBackoff(options, given.backoff)
  if (backoff !== undefined) out.backoff = backoff
  const complete = parseKeep(options, given.removeOnComplete, 'removeOnComplete')
  if (complete !== undefined) out.removeOnComplete = complete
  const fail = parseKeep(options, given.removeOnFail, 'removeOnFail')
  if (fail !== undefined) out.removeOnFail = fail
  return out
}

export function checkQueueName(name: unknown): string {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    throw invalidArgument('kit.queue(name)', `the queue name must be 1-100 letters, digits, '_', '-' or '.', got ${show(name)} `
      + "(no ':', which BullMQ uses to separate the parts of its keys); e.g. kit.queue('scan')")
  }
  return name
}

export function parseQueueOptions(raw: unknown, queue: string): QueueConfig {
  const options = new Options(`queue '${queue}'`)
  const given = options.object<QueueOptions>(raw, `kit.queue('${queue}', options)`, `kit.queue('${queue}', { attempts: 3 })`)
  options.known(given, QUEUE_OPTIONS, ALIASES)
  return {
    onRedisDown: options.oneOf(given.onRedisDown, 'onRedisDown', POLICIES, 'hold',
      "Use 'hold' (keep the job and add it once Redis is back), 'run-local' (run it in this process) or 'reject' (throw ERR_KIT_QUEUE_UNAVAILABLE)."),
    maxHeld: options.integer(given.maxHeld, 'maxHeld', 1000),
    prefix: options.string(given.prefix, 'prefix', 'job', "Use letters, digits, '_', '-' or '.', e.g. 'job'.", PREFIX),
    defaults: { removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED, ...parseSettings(options, given) },
  }
}

/** `jobId` by BullMQ's rules (whole numbers are its own ids; ':' separates key parts). */
export function checkJobId(method: string, id: unknown): string {
  if (typeof id !== 'string' || id === '') {
    throw invalidArgument(method, `a job id must be a non-empty string, got ${show(id)}; e.g. { jobId: 'example.com' }`)
  }
  if (`${Number.parseInt(id, 10)}` === id) {
    throw invalidArgument(method, `job id ${show(id)} is a whole number, which BullMQ keeps for the ids it generates itself; `
      + `use a name, e.g. 'scan-${id}'`)
  }
  if (id.includes(':')) {
    throw invalidArgument(method, `job id ${show(id)} contains ':', which BullMQ refuses in ids (it separates the parts of its keys); `
      + "replace it, e.g. id.replaceAll(':', '_'), or encodeURIComponent(id)")
  }
  return id
}

/** What one add() call asked for: the job's id (given, or a new UUID) and BullMQ's options. */
export interface AddRequest {
  jobId: string
  given: boolean
  options: BullJobOptions
}

/**
 * add() options are a call's argument: a mistake is ERR_KIT_INVALID_ARGUMENT, as for any other
 * argument. No options, or only a `jobId` (the common calls), skip the options reader.
 */
export function parseAddOptions(raw: unknown, queue: string): AddRequest {
  if (raw === undefined) return { jobId: randomUUID(), given: false, options: {} }
  if (typeof raw === 'object' && raw !== null && onlyJobId(raw)) {
    return { jobId: checkJobId(`queue '${queue}' add()`, (raw as { jobId: unknown }).jobId), given: true, options: {} }
  }
  try {
    return readAddOptions(raw, queue)
  } catch (error) {
    if (error instanceof KitError && error.code === 'ERR_KIT_INVALID_OPTION') throw new KitError('ERR_KIT_INVALID_ARGUMENT', error.message)
    throw error
  }
}

function onlyJobId(raw: object): boolean {
  for (const key in raw) if (key !== 'jobId') return false
  return 'jobId' in raw
}

function readAddOptions(raw: unknown, queue: string): AddRequest {
  const options = new Options(`queue '${queue}' add()`)
  const given = options.object<AddOptions>(raw, `queue '${queue}' add(name, data, options)`, "add('scan', data, { jobId: 'example.com' })")
  options.known(given, ADD_OPTIONS, ALIASES)
  const out = parseSettings(options, given)
  if (given.delay !== undefined) out.delay = options.milliseconds(given.delay, 'delay', 0, true)
  if (given.priority !== undefined) out.priority = options.integer(given.priority, 'priority', 0, 0, PRIORITY_LIMIT)
  if (given.lifo !== undefined) out.lifo = options.boolean(given.lifo, 'lifo', false)
  const jobId = given.jobId === undefined ? randomUUID() : checkJobId(`queue '${queue}' add()`, given.jobId)
  return { jobId, given: given.jobId !== undefined, options: out }
}

export function parseWorkerOptions(raw: unknown, queue: string): WorkerConfig {
  const options = new Options(`worker '${queue}'`)
  const given = options.object<WorkerOptions>(raw, `kit.worker('${queue}', processor, options)`, `kit.worker('${queue}', processor, { concurrency: 4 })`)
  options.known(given, WORKER_OPTIONS, { lockRenewTime: 'lockDuration', stalled: 'stalledInterval' })
  return {
    concurrency: options.integer(given.concurrency, 'concurrency', 1, 1, 10_000),
    lockDuration: options.milliseconds(given.lockDuration, 'lockDuration', 30_000),
    stalledInterval: options.milliseconds(given.stalledInterval, 'stalledInterval', 30_000),
    maxStalledCount: options.integer(given.maxStalledCount, 'maxStalledCount', 1, 0),
    closeTimeoutMs: options.milliseconds(given.closeTimeoutMs, 'closeTimeoutMs', 10_000, true),
  }
}

/** The job's data as JSON text: what BullMQ would store, refused here if JSON cannot hold it. */
export function encodeData(queue: string, data: unknown): string {
  let text: string | undefined
  try {
    text = JSON.stringify(data)
  } catch (error) {
    throw invalidArgument(`queue '${queue}' add()`, `the job data cannot be serialised to JSON (${(error as Error).message}); `
      + 'pass plain objects, arrays, strings, numbers, booleans and null (no cycles, BigInt or class instances with state)')
  }
  if (text === undefined) {
    throw invalidArgument(`queue '${queue}' add()`, `the job data is ${show(data)}, which JSON cannot hold; pass an object, e.g. { target: 'example.com' }`)
  }
  return text
}
