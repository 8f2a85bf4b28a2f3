/**
 * Two worker processes on one queue; the one running a job is killed (kill -9) mid-job, and the
 * other takes the job over once its lock expired (BullMQ's stalled-job recovery) and completes it.
 * And a worker process whose kit.close() gave up on a running job still exits by itself.
 */
import assert from 'node:assert/strict'
import type { Kit } from '../../lib/index.js'
import { startChildWorker, type ChildWorker } from '../helpers/jobs.js'
import { eventually, testKit } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'

describe('job queue with two worker processes', () => {
  let server: RedisServer
  let kit: Kit
  const workers: ChildWorker[] = []

  beforeEach(async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
  })

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()))
    await kit.close()
    await server.stop()
  })

  it('completes a job on the other worker when the one running it is killed mid-job', async function () {
    this.timeout(60_000)
    // A short lock and stall check, so the takeover comes within seconds (the defaults: 30 s each).
    const env = { JOB_REDIS_URL: server.url, JOB_MS: '1500', LOCK_MS: '1000', STALLED_MS: '500' }
    workers.push(...await Promise.all([startChildWorker(env), startChildWorker(env)]))
    const scans = kit.queue('scan')
    await scans.add('scan', { target: 'example.com' }, { jobId: 'example.com' })

    const startedOn = (): ChildWorker | undefined => workers.find((worker) => worker.events.some((e) => e.event === 'start'))
    await eventually(() => startedOn() !== undefined, 10_000, 'the job started on a worker')
    const first = startedOn() as ChildWorker
    const other = workers.find((worker) => worker !== first) as ChildWorker
    first.child.kill('SIGKILL')
    await first.stop()

    await eventually(async () => (await scans.getJob('example.com'))?.state === 'completed', 20_000,
      `the job completed on the other worker (its output: ${other.output()})`)
    const job = await scans.getJob('example.com')
    assert.deepEqual(job?.result, { by: other.child.pid })
    assert.ok(other.events.some((e) => e.event === 'start' && e.id === 'example.com'), 'taken over by the other worker')
    assert.ok(!first.events.some((e) => e.event === 'done'), 'the killed worker never finished it')
  })

  it('exits by itself after close() gave up on a running job (BullMQ kept renewing its lock on a timer, so it never did)', async function () {
    this.timeout(30_000)
    // BullMQ's default lock and stall-check timings, a job that never ends (and holds no timer itself), a short closeTimeoutMs.
    const worker = await startChildWorker({ JOB_REDIS_URL: server.url, JOB_MS: 'never', CLOSE_MS: '300', EXIT: 'self' })
    workers.push(worker)
    await kit.queue('scan').add('scan', {}, { jobId: 'endless' })
    await eventually(() => worker.events.some((e) => e.event === 'start'), 10_000, 'the job started')
    worker.child.kill('SIGTERM')
    await eventually(() => worker.events.some((e) => e.event === 'closed'), 5000, `kit.close() returned (output: ${worker.output()})`)
    await eventually(() => worker.child.exitCode !== null, 5000, `the process exited by itself (output: ${worker.output()})`)
    assert.equal(worker.child.exitCode, 0)
  })
})
