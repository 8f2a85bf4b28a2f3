/**
 * The example server's background scans, driven as a client would: POST a scan job (202 and
 * Location), follow it to its result, while Redis is up and while it is down, and the queue
 * dashboard behind the login.
 */
import assert from 'node:assert/strict'
import request from 'supertest'
import { createApp } from '../../examples/server.js'
import { eventually, waitForState } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'

const quiet = { info() {}, warn() {}, error() {} }

describe('example server: background scans', () => {
  let server: RedisServer
  let built: ReturnType<typeof createApp>

  beforeEach(async () => {
    server = await RedisServer.start()
    built = createApp({ kit: { url: server.url, env: {}, logger: quiet }, scanJobMs: 200, rateLimit: 1_000_000 })
    await built.kit.ready()
  })

  afterEach(async () => {
    server.resume()
    await built.kit.close()
    await server.stop()
  })

  it('answers 202 with a Location, one job per target at a time, and the job shows progress, then its report', async () => {
    const created = await request(built.app).post('/api/scans/Example.com/jobs').expect(202)
    assert.equal(created.headers.location, '/api/jobs/scan/example.com')
    assert.equal(created.body.id, 'example.com')
    assert.equal(created.body.state, 'waiting')
    const again = await request(built.app).post('/api/scans/example.com/jobs').expect(202)
    assert.equal(again.body.createdAt, created.body.createdAt, 'the same job, not a second one')

    const seen = new Set<unknown>()
    await eventually(async () => {
      const res = await request(built.app).get(created.headers.location as string).expect(200)
      seen.add(res.body.progress)
      return res.body.state === 'completed'
    }, 10_000, 'the scan completed')
    const done = await request(built.app).get('/api/jobs/scan/example.com').expect(200)
    assert.equal(done.body.progress, 100)
    assert.deepEqual(done.body.result.openPorts, [22, 80, 443])
    assert.ok([...seen].some((p) => typeof p === 'number' && p > 0 && p < 100), `progress seen between 0 and 100: ${[...seen].join(', ')}`)

    await request(built.app).get('/api/jobs/scan/nothing.example').expect(404)
    await request(built.app).post('/api/scans/not_a_host!/jobs').expect(400)
    await request(built.app).post('/api/scans/123/jobs').expect(400)
  })

  it('takes scan jobs while Redis is down (202, held) and runs them once it is back', async () => {
    await server.kill()
    await request(built.app).get('/api/visits').expect(200) // the kit notices
    await waitForState(built.kit, 'degraded')
    const held = await request(built.app).post('/api/scans/down.example/jobs').expect(202)
    assert.equal(held.body.state, 'held')
    assert.equal((await request(built.app).get('/api/jobs/scan/down.example').expect(200)).body.state, 'held')
    const unknown = await request(built.app).get('/api/jobs/scan/other.example').expect(503)
    assert.equal(unknown.headers['retry-after'], '5')
    const health = await request(built.app).get('/health').expect(200)
    assert.equal(health.body.queues.scan.held, 1)

    await server.start()
    await waitForState(built.kit, 'ready')
    await eventually(async () => (await request(built.app).get('/api/jobs/scan/down.example')).body.state === 'completed', 10_000, 'the held scan completed')
  })

  it('shows the queue dashboard to logged-in users only', async () => {
    await request(built.app).get('/admin/queues/api/queues').set('accept', 'application/json').expect(401)
    const page = await request(built.app).get('/admin/queues').set('accept', 'text/html').expect(303)
    assert.equal(page.headers.location, '/login')
    const agent = request.agent(built.app)
    await agent.post('/login').type('form').send({ username: 'ada' }).expect(303).expect('location', '/admin/queues')
    await request(built.app).post('/api/scans/example.com/jobs').expect(202)
    const api = await agent.get('/admin/queues/api/queues?activeQueue=scan&status=latest&page=1').expect(200)
    assert.deepEqual(api.body.queues.map((queue: { name: string }) => queue.name), ['scan'])
    await agent.get('/admin/queues').expect(200).expect('content-type', /html/)
  })
})
