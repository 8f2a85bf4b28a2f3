/**
 * What the job-queue tests share: a recorder of processor runs (which job ran, how often, in
 * what order), a gate a processor can wait on, and worker processes of their own for the tests
 * that kill one mid-job (jobs-worker-child.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { WorkerJob } from '../../lib/index.js'
import { eventually } from './kit.js'

/** Every run of a processor, in the order they started. */
export class Runs {
  readonly started: string[] = []
  readonly finished: string[] = []

  /** A processor that records the job and returns `{ id, data }`, after `ms` if given. */
  processor(ms = 0): (job: WorkerJob) => Promise<{ id: string; data: unknown }> {
    return async (job) => {
      this.started.push(job.id)
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
      this.finished.push(job.id)
      return { id: job.id, data: job.data }
    }
  }

  /** How many times each job ran. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const id of this.finished) counts.set(id, (counts.get(id) ?? 0) + 1)
    return counts
  }

  /** Ids that ran more than once. */
  twice(): string[] {
    return [...this.counts()].filter(([, n]) => n > 1).map(([id]) => id)
  }

  /** Waits until every id in `ids` finished at least once. */
  async all(ids: Iterable<string>, ms = 15_000): Promise<void> {
    const wanted = [...ids]
    await eventually(() => { const done = new Set(this.finished); return wanted.every((id) => done.has(id)) }, ms,
      `${wanted.length} job(s) processed (have ${new Set(this.finished).size})`)
  }
}

/** A promise a processor can wait on, opened by the test. */
export class Gate {
  private opened = false
  private waiters: (() => void)[] = []
  readonly arrived: string[] = []

  wait(id: string): Promise<void> {
    this.arrived.push(id)
    if (this.opened) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  open(): void {
    this.opened = true
    for (const resolve of this.waiters.splice(0)) resolve()
  }
}

export interface ChildWorker {
  child: ChildProcess
  /** Lines the child printed: `{ event: 'ready' | 'start' | 'done', id?, pid }`. */
  events: { event: string; id?: string; pid: number }[]
  output: () => string
  stop: () => Promise<void>
}

/** A worker in its own process (jobs-worker-child.ts), so a test can kill -9 it mid-job. */
export async function startChildWorker(env: Record<string, string>): Promise<ChildWorker> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'jobs-worker-child.ts')], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const events: ChildWorker['events'] = []
  let text = ''
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    text += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      try { events.push(JSON.parse(line) as ChildWorker['events'][number]) } catch { /* not an event */ }
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const worker: ChildWorker = {
    child,
    events,
    output: () => text,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
  try {
    await eventually(() => events.some((e) => e.event === 'ready'), 20_000, `worker process ready (output: ${text})`)
  } catch (error) {
    await worker.stop()
    throw error
  }
  return worker
}
