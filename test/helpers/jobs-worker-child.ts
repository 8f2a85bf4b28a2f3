/**
 * A worker process for the worker-process tests and nothing else: one kit, one worker for queue
 * `scan` whose jobs take JOB_MS. Prints a JSON line per event (`ready`, then `start` / `done` with
 * the job id, `closed` once kit.close() returned) so the test sees where the job is; SIGTERM
 * closes the kit, then exits — or, with EXIT=self, leaves the process to end by itself.
 *
 * Env: JOB_REDIS_URL, JOB_MS (default 2000; `never`: a job that never settles and holds no timer),
 * LOCK_MS, STALLED_MS, CLOSE_MS (closeTimeoutMs), EXIT.
 */
import { createKit } from '../../lib/index.js'

function say(event: string, id?: string): void {
  process.stdout.write(`${JSON.stringify({ event, pid: process.pid, ...(id !== undefined ? { id } : {}) })}\n`)
}

async function main(): Promise<void> {
  const kit = createKit({ env: {}, url: process.env.JOB_REDIS_URL, logger: false, maxRetryDelayMs: 200 })
  const jobMs = process.env.JOB_MS === 'never' ? undefined : Number(process.env.JOB_MS ?? 2000)
  const worker = kit.worker('scan', async (job) => {
    say('start', job.id)
    await new Promise((resolve) => { if (jobMs !== undefined) setTimeout(resolve, jobMs) })
    say('done', job.id)
    return { by: process.pid }
  }, {
    ...(process.env.LOCK_MS ? { lockDuration: Number(process.env.LOCK_MS) } : {}),
    ...(process.env.STALLED_MS ? { stalledInterval: Number(process.env.STALLED_MS) } : {}),
    ...(process.env.CLOSE_MS ? { closeTimeoutMs: Number(process.env.CLOSE_MS) } : {}),
  })
  await kit.ready()
  await worker.bullmq?.waitUntilReady()
  say('ready')
  process.once('SIGTERM', () => {
    void kit.close().then(() => {
      say('closed')
      if (process.env.EXIT !== 'self') process.exit(0)
    })
  })
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
