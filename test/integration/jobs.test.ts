/**
 * kit.queue() / kit.worker() against a real redis-server: adding and processing, results and
 * progress, retries, one job per id, the key layout, retention, bad input, /health, and close().
 * Outages are in jobs-outage.test.ts, worker processes in jobs-stalled.test.ts.
 */
import assert from 'node:assert/strict'
import express from 'express'
import request from 'supertest'
import { KitError, type Kit } from '../../lib/index.js'
import { Gate, Runs } from '../helpers/jobs.js'
import { eventually, testKit, timed } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

function isKitError(code: string, message?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof KitError, `a KitError, got ${String(error)}`)
    assert.equal(error.code, code)
    if (message) assert.match(error.message, message)
    return true
  }
}

describe('job queue', () => {
  let server: RedisServer
  let kit: Kit & { logger: { lines: string[] } }

  beforeEach(async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
  })

  afterEach(async () => {
    server.resume()
    await kit.close()
    await server.stop()
  })

  it('adds a job, processes it, and getJob() shows its progress, then its result', async () => {
    const scans = kit.queue<{ target: string }, { ports: number[] }>('scan')
    const gate = new Gate()
    kit.worker<{ target: string }, { ports: number[] }>('scan', async (job) => {
      await job.updateProgress(50)
      await gate.wait(job.id)
      return { ports: [22, 443] }
    })
    const added = await scans.add('scan', { target: 'example.com' }, { jobId: 'example.com' })
    assert.equal(added.id, 'example.com')
    assert.equal(added.queue, 'scan')
    assert.equal(added.state, 'waiting')
    assert.deepEqual(added.data, { target: 'example.com' })
    await eventually(async () => (await scans.getJob('example.com'))?.progress === 50, 5000, 'progress 50')
    const running = await scans.getJob('example.com')
    assert.equal(running?.state, 'active')
    gate.open()
    await eventually(async () => (await scans.getJob('example.com'))?.state === 'completed', 5000, 'completed')
    const done = await scans.getJob('example.com')
    assert.deepEqual(done?.result, { ports: [22, 443] })
    assert.equal(done?.attemptsMade, 1)
    assert.ok(done?.processedAt && done.finishedAt)
    assert.equal(await scans.getJob('no-such-job'), undefined)
  })

  it('retries a failing job with its backoff, then completes it', async () => {
    const scans = kit.queue('flaky', { attempts: 3, backoff: { type: 'fixed', delay: 300 } })
    const starts: number[] = []
    kit.worker('flaky', async () => {
      starts.push(Date.now())
      if (starts.length < 3) throw new Error(`attempt ${starts.length} failed`)
      return 'ok'
    })
    await scans.add('check', { n: 1 }, { jobId: 'j1' })
    await eventually(async () => (await scans.getJob('j1'))?.state === 'completed', 10_000, 'completed after retries')
    const job = await scans.getJob('j1')
    assert.equal(job?.result, 'ok')
    assert.equal(job?.attemptsMade, 3)
    assert.equal(starts.length, 3)
    for (let i = 1; i < starts.length; i++) assert.ok((starts[i] as number) - (starts[i - 1] as number) >= 290, `retry ${i} waited for the backoff`)
    // Each failed attempt counts, under the queue's own name.
    await eventually(() => kit.stats().jobs.flaky?.completed === 1, 5000, `completed in kit.stats() (${JSON.stringify(kit.stats().jobs)})`)
    assert.deepEqual(kit.stats().jobs, { flaky: { added: 1, failed: 2, completed: 1 } })
  })

  it('fails a job once its attempts are used up, with the reason', async () => {
    const scans = kit.queue('failing', { attempts: 2 })
    kit.worker('failing', async () => { throw new Error('host unreachable') })
    await scans.add('check', {}, { jobId: 'dead.example' })
    await eventually(async () => (await scans.getJob('dead.example'))?.state === 'failed', 10_000, 'failed')
    const job = await scans.getJob('dead.example')
    assert.equal(job?.failedReason, 'host unreachable')
    assert.equal(job?.attemptsMade, 2)
  })

  it('returns the job already waiting or running under an id, and replaces a finished one', async () => {
    const scans = kit.queue('scan')
    const first = await scans.add('scan', { v: 1 }, { jobId: 'example.com' })
    const again = await scans.add('scan', { v: 2 }, { jobId: 'example.com' })
    assert.equal(again.state, 'waiting')
    assert.deepEqual(again.data, { v: 1 }, 'the job that waits, not the new data')
    assert.equal(again.createdAt, first.createdAt)

    const gate = new Gate()
    const runs = new Runs()
    kit.worker('scan', async (job) => { await gate.wait(job.id); return runs.processor()(job) })
    await eventually(() => gate.arrived.length === 1, 5000, 'the job running')
    const whileActive = await scans.add('scan', { v: 3 }, { jobId: 'example.com' })
    assert.equal(whileActive.state, 'active')
    assert.deepEqual(whileActive.data, { v: 1 })
    gate.open()
    await runs.all(['example.com'])
    await eventually(async () => (await scans.getJob('example.com'))?.state === 'completed', 5000, 'completed')

    const rescan = await scans.add('scan', { v: 4 }, { jobId: 'example.com' })
    assert.equal(rescan.state, 'waiting')
    assert.deepEqual(rescan.data, { v: 4 }, 'a finished job is replaced by the new one')
    await eventually(() => runs.finished.length === 2, 5000, 'the second run')
    const redis = testClient(server)
    assert.equal(await redis.llen('job:scan:wait'), 0)
    assert.deepEqual(JSON.parse(await redis.hget('job:scan:example.com', 'data') ?? ''), { v: 4 })
    // Added counts jobs put into Redis: the first and the replacement, not the two answered with the job already there.
    await eventually(() => kit.stats().jobs.scan?.completed === 2, 5000, `completed in kit.stats() (${JSON.stringify(kit.stats().jobs)})`)
    assert.deepEqual(kit.stats().jobs, { scan: { added: 2, completed: 2 } })
  })

  it("keeps a job at <keyPrefix>job:<queue>:<id>, without a TTL while it waits", async () => {
    const scans = kit.queue('scan')
    await scans.add('scan', { target: 'example.com' }, { jobId: 'example.com' })
    const redis = testClient(server)
    assert.equal(await redis.type('job:scan:example.com'), 'hash')
    assert.equal(await redis.ttl('job:scan:example.com'), -1)
    assert.deepEqual(await redis.lrange('job:scan:wait', 0, -1), ['example.com'])
    const generated = await scans.add('scan', { target: 'other.example' })
    assert.match(generated.id, /^[0-9a-f-]{36}$/, 'a job without an id gets a UUID')
    assert.equal(await redis.ttl(`job:scan:${generated.id}`), -1)

    const prefixed = testKit({ url: server.url, keyPrefix: 'app1:' })
    try {
      await prefixed.ready()
      await prefixed.queue('scan', { prefix: 'jobs' }).add('scan', {}, { jobId: 'example.com' })
      assert.equal(await redis.type('app1:jobs:scan:example.com'), 'hash')
    } finally {
      await prefixed.close()
    }
  })

  it('keeps finished jobs up to the configured count, then removes the oldest', async () => {
    const scans = kit.queue('kept', { removeOnComplete: { count: 2 } })
    const runs = new Runs()
    kit.worker('kept', runs.processor())
    for (const id of ['a1', 'a2', 'a3', 'a4']) {
      await scans.add('t', {}, { jobId: id })
      await runs.all([id])
    }
    const redis = testClient(server)
    await eventually(async () => (await redis.zcard('job:kept:completed')) === 2, 5000, 'two completed jobs kept')
    assert.deepEqual(await redis.zrange('job:kept:completed', 0, '-1'), ['a3', 'a4'])
    assert.equal(await redis.exists('job:kept:a1'), 0)
    // The defaults keep a day's worth, at most 1000.
    const defaults = kit.queue('defaults')
    await defaults.add('t', {}, { jobId: 'd1' })
    const opts = JSON.parse(await redis.hget('job:defaults:d1', 'opts') ?? '{}')
    assert.deepEqual([opts.removeOnComplete, opts.removeOnFail], [{ age: 86_400, count: 1000 }, { age: 604_800, count: 5000 }])
  })

  it('refuses bad input with a KitError that names the problem', async () => {
    assert.throws(() => kit.queue('scan', { max_held: 3 } as never), isKitError('ERR_KIT_INVALID_OPTION', /`max_held` is not an option\. Did you mean `maxHeld`\?/))
    assert.throws(() => kit.queue('scan', { retries: 3 } as never), isKitError('ERR_KIT_INVALID_OPTION', /Did you mean `attempts`\?/))
    assert.throws(() => kit.queue('scan', { onRedisDown: 'Hold' } as never), isKitError('ERR_KIT_INVALID_OPTION', /Did you mean 'hold'/))
    assert.throws(() => kit.queue('a:b'), isKitError('ERR_KIT_INVALID_ARGUMENT', /no ':'/))
    const scans = kit.queue('scan', { attempts: 2 })
    assert.throws(() => kit.queue('scan', { attempts: 5 }), isKitError('ERR_KIT_INVALID_ARGUMENT', /already exists/))
    assert.equal(kit.queue('scan'), scans, 'without options, the queue made before')
    await assert.rejects(scans.add('scan', {}, { jobID: 'x' } as never), isKitError('ERR_KIT_INVALID_ARGUMENT', /Did you mean `jobId`\?/))
    await assert.rejects(scans.add('scan', {}, { jobId: '123' }), isKitError('ERR_KIT_INVALID_ARGUMENT', /whole number/))
    await assert.rejects(scans.add('scan', {}, { jobId: 'host:8080' }), isKitError('ERR_KIT_INVALID_ARGUMENT', /contains ':'/))
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await assert.rejects(scans.add('scan', circular), isKitError('ERR_KIT_INVALID_ARGUMENT', /cannot be serialised to JSON/))
    await assert.rejects(scans.add('scan', { n: 1n }), isKitError('ERR_KIT_INVALID_ARGUMENT', /cannot be serialised to JSON/))
    await assert.rejects(scans.add('scan', undefined), isKitError('ERR_KIT_INVALID_ARGUMENT', /JSON cannot hold/))
    assert.throws(() => kit.worker('scan', 'not a function' as never), isKitError('ERR_KIT_INVALID_ARGUMENT', /processor must be a function/))
    assert.throws(() => kit.worker('scan', async () => 1, { Concurrency: 2 } as never), isKitError('ERR_KIT_INVALID_OPTION', /Did you mean `concurrency`\?/))
    kit.worker('scan', async () => 1)
    assert.throws(() => kit.worker('scan', async () => 2), isKitError('ERR_KIT_INVALID_ARGUMENT', /already has a worker/))
    const redis = testClient(server)
    // (the worker keeps its meta and stall-check keys)
    assert.deepEqual((await redis.keys('job:*')).filter((key) => !/:(meta|stalled-check)$/.test(key)), [], 'no job was added')
  })

  it('GET /health lists each queue with its counts and held jobs', async () => {
    const scans = kit.queue('scan')
    await scans.add('scan', {}, { jobId: 'w1' })
    await scans.add('scan', {}, { jobId: 'd1', delay: 60_000 })
    const app = express()
    app.use('/health', kit.healthRouter())
    const res = await request(app).get('/health').expect(200)
    assert.equal(res.body.features.jobs, 'redis')
    assert.deepEqual(res.body.queues, { scan: { waiting: 1, active: 0, delayed: 1, failed: 0, completed: 0, held: 0, local: 0, workers: 0 } })
  })

  it('close() waits for a running job to finish and records its result', async () => {
    const scans = kit.queue('scan')
    const gate = new Gate()
    kit.worker('scan', async (job) => { await gate.wait(job.id); return 'finished' })
    await scans.add('scan', {}, { jobId: 'long' })
    await eventually(() => gate.arrived.length === 1, 5000, 'the job running')
    setTimeout(() => gate.open(), 300)
    const { ms } = await timed(() => kit.close())
    assert.ok(ms >= 250, `close() waited for the job (${Math.round(ms)} ms)`)
    const redis = testClient(server)
    assert.equal(await redis.hget('job:scan:long', 'returnvalue'), '"finished"')
    await assert.rejects(scans.add('scan', {}), isKitError('ERR_KIT_CLOSED'))
  })

  it('close() stops waiting after closeTimeoutMs and leaves the job to another worker', async () => {
    const scans = kit.queue('scan')
    const gate = new Gate()
    kit.worker('scan', (job) => gate.wait(job.id), { closeTimeoutMs: 500, lockDuration: 1000, stalledInterval: 500 })
    await scans.add('scan', {}, { jobId: 'stuck' })
    await eventually(() => gate.arrived.length === 1, 5000, 'the job running')
    const { ms } = await timed(() => kit.close())
    assert.ok(ms < 500 + 1500, `close() returned after about closeTimeoutMs (${Math.round(ms)} ms)`)
    assert.ok(kit.logger.lines.some((line) => line.includes('ERR_KIT_QUEUE_CLOSE')), kit.logger.lines.join('\n'))

    const next = testKit({ url: server.url })
    try {
      const runs = new Runs()
      next.worker('scan', runs.processor(), { lockDuration: 1000, stalledInterval: 500 })
      await runs.all(['stuck'], 10_000)
      await eventually(async () => (await next.queue('scan').getJob('stuck'))?.state === 'completed', 5000, 'completed by the other worker')
    } finally {
      await next.close()
    }
  })
})

describe('job queue without Redis on purpose (ENABLE_REDIS=false)', () => {
  it('runs every job in the process, with retries, and getJob() sees it', async () => {
    const kit = testKit({ env: { ENABLE_REDIS: 'false' } })
    try {
      const scans = kit.queue('scan', { attempts: 2 })
      let calls = 0
      kit.worker('scan', async (job) => {
        calls++
        if (calls === 1) throw new Error('first attempt fails')
        await job.updateProgress(100)
        return { target: (job.data as { target: string }).target, local: job.local }
      })
      const added = await scans.add('scan', { target: 'example.com' }, { jobId: 'example.com' })
      assert.equal(added.local, true)
      await eventually(async () => (await scans.getJob('example.com'))?.state === 'completed', 5000, 'completed')
      const job = await scans.getJob('example.com')
      assert.deepEqual(job?.result, { target: 'example.com', local: true })
      assert.equal(job?.attemptsMade, 2)
      assert.equal(job?.progress, 100)
      assert.equal(scans.bullmq, undefined)
      const orphan = kit.queue('nobody-works-here')
      await assert.rejects(orphan.add('t', {}), isKitError('ERR_KIT_QUEUE_UNAVAILABLE', /no worker in this process/))
    } finally {
      await kit.close()
    }
  })
})
