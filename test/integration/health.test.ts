import assert from 'node:assert/strict'
import express from 'express'
import express4 from 'express4'
import type { Redis } from 'ioredis'
import request from 'supertest'
import { KitError, type Kit } from '../../lib/index.js'
import { eventually, SLACK, testKit, timed, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

/** The kit's default healthTimeoutMs: the longest GET /health/redis waits for its PING. */
const HEALTH_TIMEOUT = 1000

type HealthOptions = Parameters<Kit['healthRouter']>[0]

function appFor(kit: Kit, framework: typeof express = express, options?: HealthOptions) {
  const app = framework()
  app.use('/health', kit.healthRouter(options))
  return app
}

/** The router with details for every caller, as an app mounted behind its own authentication would be. */
function detailedApp(kit: Kit, framework: typeof express = express) {
  return appFor(kit, framework, { details: true })
}

/** Redis's own count of a command since start-up (INFO commandstats). */
async function commandCount(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats')
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)
  return match ? Number(match[1]) : 0
}

describe('health router', () => {
  let server: RedisServer
  let kit: Kit

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

  it('GET /health/redis answers the healthy shape with a live PING latency', async () => {
    const res = await request(appFor(kit)).get('/health/redis').expect(200)
    assert.deepEqual(Object.keys(res.body), ['status', 'latency_ms', 'message'])
    assert.equal(res.body.status, 'healthy')
    assert.equal(res.body.message, 'Redis connection is healthy')
    assert.equal(typeof res.body.latency_ms, 'number')
    assert.ok(res.body.latency_ms >= 0 && res.body.latency_ms < 1000)
  })

  it('GET /health/redis answers 503 unhealthy when Redis is killed, with the error only when details are on', async () => {
    const degraded = waitForState(kit, 'degraded')
    await server.kill()
    await degraded
    const res = await request(detailedApp(kit)).get('/health/redis').expect(503)
    assert.deepEqual(Object.keys(res.body), ['status', 'error', 'message'])
    assert.equal(res.body.status, 'unhealthy')
    assert.equal(res.body.message, 'Redis connection failed')
    assert.equal(typeof res.body.error, 'string')
    assert.ok(res.body.error.includes(`127.0.0.1:${server.port}`), res.body.error)
    // The default: how things are, never where or why.
    const hidden = await request(appFor(kit)).get('/health/redis').expect(503)
    assert.deepEqual(hidden.body, { status: 'unhealthy', message: 'Redis connection failed' })
  })

  it('GET /health/redis does not hang on a hung Redis (SIGSTOP)', async () => {
    server.pause()
    const { value: res, ms } = await timed(() => request(detailedApp(kit)).get('/health/redis'))
    assert.equal(res.status, 503)
    assert.match(res.body.error, /timed out/)
    assert.ok(ms < HEALTH_TIMEOUT + SLACK, `answered in ${ms.toFixed(0)} ms`)
  })

  it('GET /health stays 200 and reports degraded, since when, and the memory backend during an outage', async () => {
    const app = detailedApp(kit)
    const up = await request(app).get('/health').expect(200)
    assert.equal(up.body.status, 'ok')
    assert.equal(up.body.redis.state, 'ready')
    assert.equal(up.body.features.client, 'redis')
    await server.kill()
    await waitForState(kit, 'degraded')
    await kit.client.set('during', 'outage')
    const down = await request(app).get('/health').expect(200)
    assert.equal(down.body.status, 'degraded')
    assert.equal(down.body.redis.state, 'degraded')
    assert.ok(!Number.isNaN(Date.parse(down.body.redis.since)))
    assert.equal(down.body.features.client, 'memory')
    assert.equal(down.body.journal.pending, 1)
    assert.equal(typeof down.body.redis.error, 'string')
    assert.equal(down.body.server, server.url)
  })

  it('by default (issue 13, item 15) GET /health hides the server\'s host and port and the error; details opt in, per request if need be', async () => {
    await server.kill()
    await waitForState(kit, 'degraded')
    const hidden = await request(appFor(kit)).get('/health').expect(200)
    assert.deepEqual(Object.keys(hidden.body).sort(), ['features', 'journal', 'redis', 'status'])
    assert.deepEqual(Object.keys(hidden.body.redis).sort(), ['since', 'state'])
    assert.equal(hidden.body.status, 'degraded')
    assert.ok(!JSON.stringify(hidden.body).includes(String(server.port)), JSON.stringify(hidden.body))
    // A function decides per request (here: a header an internal proxy would set).
    const perRequest = appFor(kit, express, { details: (req) => req.get('x-internal') === 'yes' })
    const outside = await request(perRequest).get('/health').expect(200)
    assert.equal(outside.body.server, undefined)
    const inside = await request(perRequest).get('/health').set('x-internal', 'yes').expect(200)
    assert.equal(inside.body.server, server.url)
    assert.equal(typeof inside.body.redis.error, 'string')
    assert.equal((await request(perRequest).get('/health/redis').expect(503)).body.error, undefined)
    assert.match((await request(perRequest).get('/health/redis').set('x-internal', 'yes').expect(503)).body.error, /127\.0\.0\.1/)
  })

  it('rejects a bad option at start-up with ERR_KIT_INVALID_OPTION', () => {
    const invalid = (pattern: RegExp) => (error: unknown): boolean => {
      assert.ok(error instanceof KitError)
      assert.equal(error.code, 'ERR_KIT_INVALID_OPTION')
      assert.match(error.message, pattern)
      return true
    }
    assert.throws(() => kit.healthRouter({ details: 'yes' as never }), invalid(/healthRouter `details` is `"yes"`.*true, false/))
    assert.throws(() => kit.healthRouter({ detail: true } as never), invalid(/Did you mean `details`/))
    assert.throws(() => kit.healthRouter('public' as never), invalid(/must be an object/))
  })

  it('concurrent GET /health/redis share ONE PING in flight (issue 13, item 15)', async () => {
    const inspect = testClient(server)
    await kit.close()
    kit = testKit({ url: server.url, healthTimeoutMs: 10_000 }) // the PING may wait while the requests arrive
    await kit.ready()
    const arrived = { count: 0 }
    const app = express()
    app.use('/health', (_req, _res, next) => { arrived.count++; next() }, kit.healthRouter())
    const before = await commandCount(inspect, 'ping')
    // A hung server holds the first PING; every request arriving meanwhile must wait for that one.
    server.pause()
    const requests = Array.from({ length: 10 }, () => request(app).get('/health/redis').then((res) => res))
    await eventually(() => arrived.count === 10, 5000, 'all ten requests in the health router')
    server.resume()
    const answers = await Promise.all(requests)
    assert.deepEqual(answers.map((res) => res.status), Array(10).fill(200))
    assert.equal(await commandCount(inspect, 'ping') - before, 1, 'one PING for ten concurrent checks')
    // Once answered, the next check sends a PING of its own (nothing cached).
    await request(app).get('/health/redis').expect(200)
    assert.equal(await commandCount(inspect, 'ping') - before, 2)
    inspect.disconnect()
  })

  it('works mounted on an Express 4 app (smoke test)', async () => {
    const app = appFor(kit, express4)
    const res = await request(app).get('/health/redis').expect(200)
    assert.equal(res.body.status, 'healthy')
    await request(app).get('/health').expect(200)
  })
})

describe('health router without Redis', () => {
  it('answers the disabled shape when ENABLE_REDIS=false', async () => {
    const kit = testKit({ env: { ENABLE_REDIS: 'false' } })
    try {
      const res = await request(appFor(kit)).get('/health/redis').expect(200)
      assert.deepEqual(res.body, { status: 'disabled', message: 'Redis is not available or not configured' })
      const summary = await request(appFor(kit)).get('/health').expect(200)
      assert.equal(summary.body.status, 'ok')
      assert.equal(summary.body.redis.state, 'disabled')
    } finally {
      await kit.close()
    }
  })

  it('names the auth problem but never the password when the password is wrong', async () => {
    const server = await RedisServer.start({ password: 'correct-horse' })
    const kit = testKit({ url: `redis://127.0.0.1:${server.port}`, password: 'battery-staple' })
    try {
      await kit.ready()
      const res = await request(detailedApp(kit)).get('/health/redis').expect(503)
      assert.equal(res.body.status, 'unhealthy')
      assert.match(res.body.error, /WRONGPASS|NOAUTH|auth/i)
      assert.ok(!JSON.stringify(res.body).includes('battery-staple'))
      const summary = await request(detailedApp(kit)).get('/health').expect(200)
      assert.ok(!JSON.stringify(summary.body).includes('battery-staple'))
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})
