/**
 * The job queue while Redis is away, against real redis-servers that are never started, killed
 * (kill -9), hung (SIGSTOP) and restarted: add() answers within commandTimeoutMs, held jobs reach
 * BullMQ once each and in order, acknowledged jobs are never lost, and workers carry on by
 * themselves afterwards.
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import express from 'express'
import request from 'supertest'
import { KitError, type JobInfo, type JobQueue, type Kit } from '../../lib/index.js'
import { Runs } from '../helpers/jobs.js'
import { eventually, SLACK, testKit, timed, waitForState } from '../helpers/kit.js'
import { LatencyProxy } from '../helpers/latency-proxy.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'

/** The kit's default commandTimeoutMs: the longest add() may take, in any state. */
const COMMAND_TIMEOUT = 300

/** Adds `count` jobs one after another, every other one with an id of its own; each answer timed. */
async function addMany(queue: JobQueue, count: number, tag: string): Promise<{ infos: JobInfo[]; slowestMs: number }> {
  const infos: JobInfo[] = []
  let slowestMs = 0
  for (let i = 0; i < count; i++) {
    const { value, ms } = await timed(() => queue.add('scan', { i, tag }, i % 2 === 0 ? { jobId: `${tag}-${i}` } : undefined))
    infos.push(value)
    slowestMs = Math.max(slowestMs, ms)
  }
  return { infos, slowestMs }
}

function isUnavailable(error: unknown): boolean {
  assert.ok(error instanceof KitError, String(error))
  assert.equal(error.code, 'ERR_KIT_QUEUE_UNAVAILABLE')
  return true
}

describe('job queue during outages', () => {
  let server: RedisServer | undefined
  let kit: (Kit & { logger: { lines: string[] } }) | undefined
  /** Messages on the kit's job diagnostics channel, for the tests that subscribe `listen`. */
  const messages: { queue: string; event: string; id: string }[] = []
  const listen = (message: unknown): void => { messages.push(message as (typeof messages)[number]) }

  afterEach(async () => {
    unsubscribe('express-redis-kit:job', listen)
    messages.length = 0
    server?.resume()
    await kit?.close()
    await server?.stop()
    server = undefined
    kit = undefined
  })

  it('answers add() at once while Redis was never reachable, and adds the held jobs once, in order, when it starts', async () => {
    subscribe('express-redis-kit:job', listen)
    const port = await freePort()
    kit = testKit({ url: `redis://127.0.0.1:${port}` })
    const scans = kit.queue('scan')
    const runs = new Runs()
    kit.worker('scan', runs.processor())
    await kit.ready()
    assert.equal(kit.state, 'degraded')

    const { infos, slowestMs } = await addMany(scans, 20, 'early')
    assert.ok(slowestMs <= COMMAND_TIMEOUT + SLACK, `every add() answered within commandTimeoutMs (slowest ${Math.round(slowestMs)} ms)`)
    assert.deepEqual(new Set(infos.map((info) => info.state)), new Set(['held']))
    assert.equal(scans.held, 20)
    assert.equal((await scans.getJob('early-0'))?.state, 'held')
    const app = express()
    app.use('/health', kit.healthRouter())
    const health = await request(app).get('/health').expect(200)
    assert.deepEqual(health.body.queues.scan, { waiting: null, active: null, delayed: null, failed: null, completed: null, held: 20, local: 0, workers: 1 })

    server = await RedisServer.start({ port })
    await runs.all(infos.map((info) => info.id))
    assert.equal(scans.held, 0)
    assert.deepEqual(runs.started, infos.map((info) => info.id), 'in the order add() took them')
    const redis = testClient(server)
    await eventually(async () => (await redis.zcard('job:scan:completed')) === 20, 5000, '20 completed jobs')
    assert.deepEqual(runs.twice(), [])
    assert.equal(runs.finished.length, 20)

    // The kit's job metrics (kit.stats(), /metrics) and the diagnostics channel tell the same story.
    const next = await scans.add('scan', { after: true })
    await runs.all([next.id])
    await eventually(() => kit?.stats().jobs.scan?.completed === 21, 5000, `21 completed in kit.stats() (${JSON.stringify(kit?.stats().jobs)})`)
    assert.deepEqual(kit.stats().jobs, { scan: { held: 20, flushed: 20, added: 1, completed: 21 } })
    const ids = infos.map((info) => info.id)
    assert.deepEqual(messages.filter((m) => m.event === 'held').map((m) => m.id), ids)
    assert.deepEqual(messages.filter((m) => m.event === 'flushed').map((m) => m.id), ids, 'flushed in the order add() took them')
    assert.deepEqual(messages.filter((m) => m.event === 'added').map((m) => m.id), [next.id])
    assert.ok(messages.every((m) => m.queue === 'scan'))
  })

  it('answers add() within commandTimeoutMs while Redis hangs (SIGSTOP), and runs the job once after SIGCONT', async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
    const scans = kit.queue('scan')
    const runs = new Runs()
    kit.worker('scan', runs.processor())
    await scans.add('scan', {}, { jobId: 'before' })
    await runs.all(['before'])

    server.pause()
    // The first add is on the wire when Redis stops: Redis may run it later, so it is held with its id.
    const inDoubt = await timed(() => scans.add('scan', { n: 1 }, { jobId: 'in-doubt' }))
    assert.ok(inDoubt.ms <= COMMAND_TIMEOUT + SLACK, `answered in ${Math.round(inDoubt.ms)} ms`)
    assert.equal(inDoubt.value.state, 'held')
    const later = await timed(() => scans.add('scan', { n: 2 }))
    assert.ok(later.ms <= COMMAND_TIMEOUT + SLACK)
    assert.equal(later.value.state, 'held')
    server.resume()
    await waitForState(kit, 'ready')
    await runs.all(['in-doubt', later.value.id])
    await eventually(() => scans.held === 0, 5000, 'the outbox flushed')
    const redis = testClient(server)
    await eventually(async () => (await redis.zcard('job:scan:completed')) === 3, 5000, 'three completed jobs')
    assert.deepEqual(runs.twice(), [], 'the job Redis got twice (on SIGCONT, then from the outbox) ran once')
    // The late answer to the in-doubt add is not counted as added: the job counts once, as held and flushed.
    await eventually(() => kit?.stats().jobs.scan?.completed === 3, 5000, `3 completed in kit.stats() (${JSON.stringify(kit?.stats().jobs)})`)
    assert.deepEqual(kit.stats().jobs, { scan: { added: 1, held: 2, flushed: 2, completed: 3 } })
  })

  it('adds each held job once, in order, when the flush is cut off by a second outage and sent again', async function () {
    this.timeout(40_000)
    const port = await freePort()
    const proxy = await LatencyProxy.start(port)
    try {
      kit = testKit({ url: proxy.url, maxRetryDelayMs: 100 })
      const scans = kit.queue('scan', { maxHeld: 1000 })
      await kit.ready()
      const held = await addMany(scans, 600, 'held')
      assert.equal(scans.held, 600)

      // Each flush batch now takes at least 60 ms, so the flush can be caught half way.
      proxy.setLatency(60)
      server = await RedisServer.start({ port })
      const redis = testClient(server)
      let atPause = 0
      await eventually(async () => (atPause = await redis.llen('job:scan:wait')) > 0, 15_000, 'the flush under way')
      proxy.pause()
      assert.ok(atPause < 600, `the flush was interrupted half way (${atPause} of 600 in Redis)`)
      await waitForState(kit, 'degraded')
      const during = await addMany(scans, 5, 'during')
      proxy.resume() // what was held back reaches Redis now: the cut-off batch runs, and is sent again
      proxy.setLatency(0)
      await waitForState(kit, 'ready')
      const after = await addMany(scans, 5, 'after')
      await eventually(() => scans.held === 0, 15_000, 'the outbox flushed')

      const ids = [...held.infos, ...during.infos, ...after.infos].map((info) => info.id)
      assert.equal(await redis.llen('job:scan:wait'), 610, 'each job once')
      const events = await redis.xrange('job:scan:events', '-', '+')
      const duplicated = events.filter(([, fields]) => fields[1] === 'duplicated').length
      assert.ok(duplicated > 0, 'part of the flush reached Redis twice')

      const runs = new Runs()
      kit.worker('scan', runs.processor())
      await runs.all(ids, 20_000)
      assert.deepEqual(runs.started, ids, 'in the order add() took them: held, then during, then after the comeback')
      assert.deepEqual(runs.twice(), [])
    } finally {
      await proxy.stop()
    }
  })

  it('processes every acknowledged add exactly once when Redis is killed (kill -9) during a stream of adds', async function () {
    this.timeout(60_000)
    server = await RedisServer.start({ persist: true })
    kit = testKit({ url: server.url })
    await kit.ready()
    const stream = kit.queue('stream', { maxHeld: 100_000, removeOnComplete: false })
    const acknowledged: string[] = []
    const refused: unknown[] = []
    let running = true
    const loops = Array.from({ length: 4 }, async (_, loop) => {
      for (let i = 0; running; i++) {
        try {
          const info = await stream.add('t', { loop, i }, i % 3 === 0 ? { jobId: `l${loop}-${i}` } : undefined)
          acknowledged.push(info.id)
        } catch (error) {
          refused.push(error)
        }
        if (kit?.state !== 'ready') await new Promise((resolve) => setTimeout(resolve, 2))
      }
    })
    await eventually(() => acknowledged.length >= 400, 20_000, '400 adds acknowledged')
    await server.kill()
    const atKill = acknowledged.length
    await waitForState(kit, 'degraded')
    await eventually(() => acknowledged.length >= atKill + 100, 10_000, 'adds held while Redis is down')
    await server.start()
    await waitForState(kit, 'ready')
    const atReady = acknowledged.length
    await eventually(() => acknowledged.length >= atReady + 200, 20_000, 'adds after the comeback')
    running = false
    await Promise.all(loops)
    await eventually(() => stream.held === 0, 10_000, 'the outbox flushed')
    assert.deepEqual(refused, [])

    const runs = new Runs()
    kit.worker('stream', runs.processor(), { concurrency: 8 })
    await runs.all(acknowledged, 30_000)
    assert.equal(new Set(acknowledged).size, acknowledged.length, 'every acknowledged add has its own id')
    assert.deepEqual(runs.twice(), [], 'none ran twice')
    const redis = testClient(server)
    await eventually(async () => (await redis.zcard('job:stream:completed')) === acknowledged.length, 10_000,
      `${acknowledged.length} completed jobs in Redis`)
    assert.equal(runs.finished.length, acknowledged.length, 'as many runs as acknowledged adds: none lost, none extra')
  })

  it('keeps the worker working after Redis is restarted and after it hung (SIGSTOP/SIGCONT), without a restart', async function () {
    this.timeout(40_000)
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
    const scans = kit.queue('scan')
    const runs = new Runs()
    const worker = kit.worker('scan', runs.processor(), { concurrency: 2 })
    const bull = worker.bullmq
    await scans.add('scan', {}, { jobId: 'first' })
    await runs.all(['first'])

    await server.restart()
    await waitForState(kit, 'ready')
    await scans.add('scan', {}, { jobId: 'after-restart' })
    await runs.all(['after-restart'], 15_000)

    server.pause()
    const during = await scans.add('scan', {}, { jobId: 'during-hang' })
    assert.equal(during.state, 'held')
    await waitForState(kit, 'degraded')
    await new Promise((resolve) => setTimeout(resolve, 1500)) // a hang long enough for blocking reads to time out
    server.resume()
    await waitForState(kit, 'ready')
    await scans.add('scan', {}, { jobId: 'after-hang' })
    await runs.all(['during-hang', 'after-hang'], 15_000)
    assert.equal(worker.bullmq, bull, 'the same BullMQ worker throughout')
    assert.deepEqual(runs.twice(), [])
  })

  it("'reject' throws ERR_KIT_QUEUE_UNAVAILABLE while Redis is down, within commandTimeoutMs", async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
    const strict = kit.queue('strict', { onRedisDown: 'reject' })
    await strict.add('t', {}, { jobId: 'up' })
    await server.kill()
    const { ms } = await timed(() => assert.rejects(strict.add('t', {}, { jobId: 'down' }), isUnavailable))
    assert.ok(ms <= COMMAND_TIMEOUT + SLACK)
    await assert.rejects(strict.getJob('up'), isUnavailable)
    assert.equal(strict.held, 0)
    await server.start()
    await waitForState(kit, 'ready')
    assert.equal((await strict.add('t', {}, { jobId: 'back' })).state, 'waiting')
  })

  it("'run-local' runs the job in this process while Redis is down; other instances never see it", async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url })
    await kit.ready()
    const local = kit.queue('local', { onRedisDown: 'run-local' })
    const runs = new Runs()
    kit.worker('local', runs.processor())
    await server.kill()
    await waitForState(kit, 'degraded')
    const info = await local.add('t', { n: 1 }, { jobId: 'here' })
    assert.equal(info.local, true)
    await runs.all(['here'])
    await eventually(async () => (await local.getJob('here'))?.state === 'completed', 5000, 'completed in memory')
    assert.deepEqual((await local.getJob('here'))?.result, { id: 'here', data: { n: 1 } })
    await server.start()
    await waitForState(kit, 'ready')
    const other = testKit({ url: server.url })
    try {
      await other.ready()
      assert.equal(await other.queue('local').getJob('here'), undefined, 'never added to Redis')
    } finally {
      await other.close()
    }
    assert.deepEqual(runs.twice(), [])
  })

  it('holds at most maxHeld jobs, warns once, and refuses the rest', async () => {
    const port = await freePort()
    kit = testKit({ url: `redis://127.0.0.1:${port}` })
    await kit.ready()
    const small = kit.queue('small', { maxHeld: 3 })
    for (let i = 0; i < 3; i++) assert.equal((await small.add('t', { i })).state, 'held')
    await assert.rejects(small.add('t', {}), isUnavailable)
    await assert.rejects(small.add('t', {}), isUnavailable)
    assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_QUEUE_FULL')).length, 1)
    await kit.close()
    assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_QUEUE_DROPPED')).length, 1, 'close() says it dropped held jobs')
  })
})
