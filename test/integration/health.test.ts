import assert from 'node:assert/strict'
import express from 'express'
import express4 from 'express4'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { SLACK, testKit, timed, waitForState } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'

/** The kit's default healthTimeoutMs: the longest GET /health/redis waits for its PING. */
const HEALTH_TIMEOUT = 1000

function appFor(kit: Kit, framework: typeof express = express) {
  const app = framework()
  app.use('/health', kit.healthRouter())
  return app
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

  it('GET /health/redis answers 503 unhealthy when Redis is killed', async () => {
    const degraded = waitForState(kit, 'degraded')
    await server.kill()
    await degraded
    const res = await request(appFor(kit)).get('/health/redis').expect(503)
    assert.deepEqual(Object.keys(res.body), ['status', 'error', 'message'])
    assert.equal(res.body.status, 'unhealthy')
    assert.equal(res.body.message, 'Redis connection failed')
    assert.equal(typeof res.body.error, 'string')
    assert.ok(res.body.error.length > 0)
  })

  it('GET /health/redis does not hang on a hung Redis (SIGSTOP)', async () => {
    server.pause()
    const { value: res, ms } = await timed(() => request(appFor(kit)).get('/health/redis'))
    assert.equal(res.status, 503)
    assert.match(res.body.error, /timed out/)
    assert.ok(ms < HEALTH_TIMEOUT + SLACK, `answered in ${ms.toFixed(0)} ms`)
  })

  it('GET /health stays 200 and reports degraded, since when, and the memory backend during an outage', async () => {
    const app = appFor(kit)
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
      const res = await request(appFor(kit)).get('/health/redis').expect(503)
      assert.equal(res.body.status, 'unhealthy')
      assert.match(res.body.error, /WRONGPASS|NOAUTH|auth/i)
      assert.ok(!JSON.stringify(res.body).includes('battery-staple'))
      const summary = await request(appFor(kit)).get('/health').expect(200)
      assert.ok(!JSON.stringify(summary.body).includes('battery-staple'))
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})
