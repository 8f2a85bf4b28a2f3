/** The example server, driven as a user would: supertest on the exported app, with Redis and without. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import request from 'supertest'
import { createApp } from '../../examples/server.js'
import { eventually, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'

const quiet = { info() {}, warn() {}, error() {} }

describe('example server with Redis', () => {
  let server: RedisServer
  let built: ReturnType<typeof createApp>

  beforeEach(async () => {
    // Persistent, as in production: a Redis that restarts empty has logged everyone out.
    server = await RedisServer.start({ persist: true })
    built = createApp({ kit: { url: server.url, env: {}, logger: quiet }, scanMs: 20, rateLimit: 1_000_000 })
    await built.kit.ready()
    assert.equal(built.kit.state, 'ready')
  })

  afterEach(async () => {
    server.resume()
    await built.kit.close()
    await server.stop()
  })

  it('logs in, answers /me, logs out', async () => {
    const agent = request.agent(built.app)
    await agent.get('/me').expect(401)
    await agent.post('/login').send({ username: 'ada' }).expect(200, { user: 'ada' })
    await agent.get('/me').expect(200, { user: 'ada' })
    await agent.post('/logout').expect(204)
    await agent.get('/me').expect(401)
  })

  it('rejects a bad username and rate-limits /login strictly', async () => {
    await request(built.app).post('/login').send({ username: '' }).expect(400)
    for (let i = 0; i < 4; i++) await request(built.app).post('/login').send({ username: 'eve' }).expect(200)
    await request(built.app).post('/login').send({ username: 'eve' }).expect(429)
  })

  it('caches a scan, serves the cached copy, and recomputes after DELETE', async () => {
    // The host is part of the key, and supertest gives each request a new port: name one host.
    const host = 'scanner.test'
    const first = await request(built.app).get('/api/scans/example.com').set('host', host).expect(200)
    assert.equal(first.headers['x-cache'], 'MISS')
    const second = await request(built.app).get('/api/scans/example.com').set('host', host).expect(200)
    assert.equal(second.headers['x-cache'], 'HIT')
    assert.equal(second.body.computedAt, first.body.computedAt)
    assert.equal(second.body.scansComputed, first.body.scansComputed)
    await request(built.app).delete('/api/scans/example.com').expect(204)
    const third = await request(built.app).get('/api/scans/example.com').set('host', host).expect(200)
    assert.equal(third.headers['x-cache'], 'MISS')
    assert.equal(third.body.scansComputed, first.body.scansComputed + 1)
    await request(built.app).get('/api/scans/not_a_host!').expect(400)
  })

  it('counts visits in Redis', async () => {
    await request(built.app).get('/api/visits').expect(200, { count: 1 })
    await request(built.app).get('/api/visits').expect(200, { count: 2 })
    const redis = testClient(server)
    assert.equal(await redis.get('visitor_count'), '2')
    redis.disconnect()
  })

  it('rate-limits /api with RateLimit headers', async () => {
    const limited = createApp({ kit: { url: server.url, env: {}, logger: quiet }, rateLimit: 3, scanMs: 1 })
    try {
      await limited.kit.ready()
      for (let i = 0; i < 3; i++) {
        const res = await request(limited.app).get('/api/visits').expect(200)
        assert.ok(res.headers.ratelimit)
      }
      await request(limited.app).get('/api/visits').expect(429)
    } finally {
      await limited.kit.close()
    }
  })

  it('keeps serving with zero failed requests when Redis is killed and restarted mid-traffic', async () => {
    const agent = request.agent(built.app)
    await agent.post('/login').send({ username: 'ada' }).expect(200)
    const statuses: number[] = []
    let running = true
    const load = (async () => {
      for (let i = 0; running; i++) {
        const paths = ['/me', '/api/visits', `/api/scans/host${i % 5}.example`, '/health']
        for (const path of paths) statuses.push((await agent.get(path)).status)
      }
    })()
    // Traffic in each phase: on Redis, on memory while it is down, on Redis again.
    const served = async (more: number, phase: string): Promise<void> => {
      const from = statuses.length
      await eventually(() => statuses.length >= from + more, 10_000, `${more} requests ${phase}`)
    }
    await served(12, 'on Redis')
    await server.kill()
    await waitForState(built.kit, 'degraded')
    await served(12, 'while Redis is down')
    await server.start()
    await waitForState(built.kit, 'ready')
    await served(12, 'after Redis returned')
    running = false
    await load
    assert.ok(statuses.length > 20)
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every request succeeded (logged in throughout)')
  })
})

describe('example server without Redis', () => {
  it('serves every route from memory when Redis is unreachable', async () => {
    const port = await freePort()
    const { app, kit } = createApp({ kit: { url: `redis://127.0.0.1:${port}`, env: {}, logger: quiet }, scanMs: 1 })
    try {
      await kit.ready()
      assert.equal(kit.state, 'degraded')
      const agent = request.agent(app)
      await agent.get('/health').expect(200)
      await agent.get('/health/redis').expect(503)
      await agent.post('/login').send({ username: 'ada' }).expect(200)
      await agent.get('/me').expect(200, { user: 'ada' })
      await agent.get('/api/visits').expect(200, { count: 1 })
      // Logged in, yet shared: the example marks scan reports shareAcrossSessions. One host for the key.
      await agent.get('/api/scans/example.com').set('host', 'scanner.test').expect(200)
      const hit = await agent.get('/api/scans/example.com').set('host', 'scanner.test').expect(200)
      assert.equal(hit.headers['x-cache'], 'HIT')
    } finally {
      await kit.close()
    }
  })

  it('serves from memory when ENABLE_REDIS=false', async () => {
    const { app, kit } = createApp({ kit: { env: { ENABLE_REDIS: 'false' }, logger: quiet }, scanMs: 1 })
    try {
      await request(app).get('/health/redis').expect(200, { status: 'disabled', message: 'Redis is not available or not configured' })
      await request(app).get('/api/visits').expect(200, { count: 1 })
    } finally {
      await kit.close()
    }
  })

  it('refuses to start in production without SESSION_SECRET', () => {
    assert.throws(() => createApp({ kit: { env: { NODE_ENV: 'production', ENABLE_REDIS: 'false' } } }), /SESSION_SECRET is not set/)
  })
})

describe('example server process', () => {
  it('finishes in-flight requests on SIGTERM, closes the kit and exits by itself', async function () {
    this.timeout(60_000)
    const redis = await RedisServer.start()
    const port = await freePort()
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'examples', 'server.ts')], {
      env: { PATH: process.env.PATH ?? '', PORT: String(port), REDIS_URL: redis.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => { output += d })
    child.stderr.on('data', (d) => { output += d })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      const base = `http://127.0.0.1:${port}`
      await eventually(() => /Redis connected at/.test(output), 20_000, `the example started (output: ${output})`)
      let answered = false
      const inFlight = fetch(`${base}/api/scans/slow.example`).then((res) => { answered = true; return res.status })
      // The request has passed the /api rate limiter (its count is in Redis): the server is
      // handling it, and its 100 ms scan is still to come.
      const inspect = testClient(redis)
      await eventually(async () => (await inspect.exists('rate:api:127.0.0.1')) === 1, 5000, 'the request in the server')
      assert.equal(answered, false, 'SIGTERM arrives while the request is in flight')
      child.kill('SIGTERM')
      assert.equal(await inFlight, 200, 'the in-flight request completed')
      assert.equal(await exited, 0, output)
      assert.match(output, /stopped/)
    } finally {
      child.kill('SIGKILL')
      await redis.stop()
    }
  })
})
