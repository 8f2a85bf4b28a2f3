/**
 * kit.cache() when Redis fails: killed (kill -9), hung (SIGSTOP), cut off by the network while it
 * keeps its data, never reachable, wrong password. No request may fail or wait much longer than
 * commandTimeoutMs, and an invalidation made during the outage must not be undone afterwards.
 */
import assert from 'node:assert/strict'
import { Agent } from 'node:http'
import type { Redis } from 'ioredis'
import { createCacheApp, PNG } from '../helpers/cache-app.js'
import { isStored } from '../helpers/cache-keys.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { RedisProxy } from '../helpers/cache-proxy.js'
import { eventually, SLACK, testKit, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'
import type { CacheOptions, Kit, KitOptions } from '../../lib/index.js'

const COMMAND_TIMEOUT_MS = 300

interface Traffic {
  stop(): Promise<{ total: number; failures: string[]; maxMs: number; labels: Map<string, number> }>
  count(): number
}

/** Workers requesting a mix of cached routes until stopped; every answer is checked. */
function traffic(port: number, workers = 6): Traffic {
  let running = true
  let total = 0
  let maxMs = 0
  const failures: string[] = []
  const labels = new Map<string, number>()
  const paths = ['/json/1', '/json/2', '/json/3', '/png', '/text', '/stream']
  // Keep-alive, like real clients: requests arrive together and cache reads share pipelines.
  const agent = new Agent({ keepAlive: true, maxSockets: workers })
  const loops = Array.from({ length: workers }, async (_, worker) => {
    for (let i = worker; running; i++) {
      const path = paths[i % paths.length] as string
      try {
        const reply = await rawRequest(port, path, { agent })
        total++
        maxMs = Math.max(maxMs, reply.ms)
        const label = String(reply.headers['x-cache'])
        labels.set(label, (labels.get(label) ?? 0) + 1)
        const ok = reply.status === 200 && (path !== '/png' || reply.body.equals(PNG))
          && (!path.startsWith('/json/') || JSON.parse(reply.body.toString()).id === path.slice(6))
        if (!ok) failures.push(`${path}: ${reply.status} ${reply.body.toString().slice(0, 80)}`)
      } catch (error) {
        failures.push(`${path}: ${(error as Error).message}`)
      }
    }
  })
  return {
    count: () => total,
    stop: async () => {
      running = false
      await Promise.all(loops)
      agent.destroy()
      return { total, failures, maxMs, labels }
    },
  }
}

describe('kit.cache() when Redis fails', function () {
  this.timeout(40_000)
  let servers: RedisServer[] = []
  let kits: Kit[] = []
  let listening: Listening[] = []
  let proxies: RedisProxy[] = []
  let raws: Redis[] = []

  afterEach(async () => {
    for (const server of servers) server.resume()
    await Promise.all(listening.map((l) => l.close()))
    await Promise.all(kits.map((kit) => kit.close()))
    await Promise.all(proxies.map((proxy) => proxy.close()))
    for (const r of raws) r.disconnect()
    await Promise.all(servers.map((server) => server.stop()))
    servers = []
    kits = []
    listening = []
    proxies = []
    raws = []
  })

  async function redis(): Promise<{ server: RedisServer; raw: Redis }> {
    const server = await RedisServer.start()
    servers.push(server)
    const raw = testClient(server, { lazyConnect: true, maxRetriesPerRequest: 1 })
    raws.push(raw)
    return { server, raw }
  }

  async function instance(kitOptions: Partial<KitOptions>, options: Partial<CacheOptions> = {}, extra: Parameters<typeof createCacheApp>[2] = {}) {
    const kit = testKit({ commandTimeoutMs: COMMAND_TIMEOUT_MS, maxRetryDelayMs: 100, ...kitOptions })
    kits.push(kit)
    const built = createCacheApp(kit, options, extra)
    const l = await listen(built.app)
    listening.push(l)
    return { ...built, kit, port: l.port }
  }

  it('answers every request while Redis is killed mid-traffic, then goes back to Redis', async () => {
    const { server, raw } = await redis()
    const a = await instance({ url: server.url })
    await waitForState(a.kit, 'ready')
    const load = traffic(a.port)
    await eventually(() => load.count() > 60, 10_000, 'traffic on Redis')
    await server.kill()
    await waitForState(a.kit, 'degraded')
    const atKill = load.count()
    await eventually(() => load.count() > atKill + 60, 10_000, 'traffic while Redis is dead')
    await server.start()
    await waitForState(a.kit, 'ready')
    const atBack = load.count()
    await eventually(() => load.count() > atBack + 60, 10_000, 'traffic after Redis returned')
    const result = await load.stop()
    assert.deepEqual(result.failures, [], `${result.failures.length} of ${result.total} requests failed`)
    assert.ok((result.labels.get('HIT') ?? 0) > 100, `hits: ${JSON.stringify([...result.labels])}`)
    // Back on Redis: a new fill is stored there again (the restarted server started empty).
    await raw.connect()
    await rawRequest(a.port, '/json/after')
    await eventually(() => isStored(raw, '/json/after'), 5000, 'fill stored in Redis')
  })

  it('answers every request within commandTimeoutMs (+ slack) while Redis hangs (SIGSTOP) mid-traffic', async () => {
    const { server } = await redis()
    const a = await instance({ url: server.url })
    await waitForState(a.kit, 'ready')
    const load = traffic(a.port)
    await eventually(() => load.count() > 60, 10_000, 'traffic on Redis')
    const before = await load.stop()
    assert.deepEqual(before.failures, [])

    server.pause()
    const hung = traffic(a.port)
    await waitForState(a.kit, 'degraded')
    const atHang = hung.count()
    await eventually(() => hung.count() > atHang + 60, 10_000, 'traffic while Redis hangs')
    const during = await hung.stop()
    server.resume()
    await waitForState(a.kit, 'ready')
    assert.deepEqual(during.failures, [], `${during.failures.length} of ${during.total} requests failed`)
    assert.ok(during.maxMs < COMMAND_TIMEOUT_MS + SLACK, `slowest request took ${during.maxMs.toFixed(0)} ms`)
    const after = await rawRequest(a.port, '/json/1')
    assert.equal(after.status, 200)
  })

  it('keeps an invalidation made while cut off from Redis (data kept) after the connection returns', async () => {
    const { server, raw } = await redis()
    await raw.connect()
    const proxy = await RedisProxy.start(server.port)
    proxies.push(proxy)
    const routeOptions = { tagged: { tags: (req: { params: Record<string, string> }) => [`item:${req.params.id as string}`] } } as Record<string, Partial<CacheOptions>>
    const a = await instance({ url: proxy.url }, {}, { routeOptions })
    await waitForState(a.kit, 'ready')
    for (const path of ['/tagged/1', '/tagged/2', '/json/p1', '/json/p2', '/text']) await rawRequest(a.port, path)
    await eventually(async () => (await raw.keys('cache:e:*')).length === 5, 5000, 'five entries in Redis')

    proxy.cut()
    await waitForState(a.kit, 'degraded')
    await a.kit.invalidate({ tag: 'item:1' })
    await a.kit.invalidate({ prefix: '/json/' })
    await a.kit.invalidate({ key: '/text' })
    // Redis still holds all five: the invalidations could not reach it.
    assert.equal((await raw.keys('cache:e:*')).length, 5)
    assert.equal((await rawRequest(a.port, '/text')).headers['x-cache'], 'MISS', 'memory answers during the outage')

    proxy.restore()
    await waitForState(a.kit, 'ready')
    const calls = a.calls('tagged') + a.calls('json') + a.calls('text')
    for (const path of ['/tagged/1', '/json/p1', '/json/p2', '/text']) {
      assert.equal((await rawRequest(a.port, path)).headers['x-cache'], 'MISS', `${path} is not served from Redis after recovery`)
    }
    assert.equal((await rawRequest(a.port, '/tagged/2')).headers['x-cache'], 'HIT', 'untouched entries survive')
    assert.equal(a.calls('tagged') + a.calls('json') + a.calls('text'), calls + 4)
  })

  it('keeps an invalidation made while Redis hangs (SIGSTOP) after it resumes', async () => {
    const { server, raw } = await redis()
    await raw.connect()
    const a = await instance({ url: server.url }, {}, { routeOptions: { tagged: { tags: ['group'] } } })
    await waitForState(a.kit, 'ready')
    for (const path of ['/tagged/1', '/json/h1', '/text']) await rawRequest(a.port, path)
    await eventually(async () => (await raw.keys('cache:e:*')).length === 3, 5000, 'three entries in Redis')

    server.pause()
    await rawRequest(a.port, '/json/h1') // times out on Redis and switches the kit to memory
    await waitForState(a.kit, 'degraded')
    await a.kit.invalidate({ tag: 'group' })
    await a.kit.invalidate({ prefix: '/json/h' })
    await a.kit.invalidate({ key: '/text' })
    server.resume()
    await waitForState(a.kit, 'ready')
    for (const path of ['/tagged/1', '/json/h1', '/text']) {
      assert.equal((await rawRequest(a.port, path)).headers['x-cache'], 'MISS', `${path} after recovery`)
    }
  })

  it('does not serve entries cached in memory during an outage once Redis is back', async () => {
    const { server, raw } = await redis()
    await raw.connect()
    const proxy = await RedisProxy.start(server.port)
    proxies.push(proxy)
    const a = await instance({ url: proxy.url })
    await waitForState(a.kit, 'ready')
    proxy.cut()
    await waitForState(a.kit, 'degraded')
    assert.equal((await rawRequest(a.port, '/json/m')).headers['x-cache'], 'MISS')
    assert.equal((await rawRequest(a.port, '/json/m')).headers['x-cache'], 'HIT', 'memory hit during the outage')
    proxy.restore()
    await waitForState(a.kit, 'ready')
    a.state.version = 2
    const after = await rawRequest(a.port, '/json/m')
    assert.equal(after.headers['x-cache'], 'MISS')
    assert.equal(JSON.parse(after.body.toString()).version, 2)
    // A second outage starts from an empty memory twin: the first outage's copy (version 1) could
    // have been invalidated through Redis in between, so it must not come back.
    await eventually(() => isStored(raw, '/json/m'), 5000, 'version 2 stored in Redis')
    proxy.cut()
    await waitForState(a.kit, 'degraded')
    a.state.version = 3
    const second = await rawRequest(a.port, '/json/m')
    assert.equal(second.headers['x-cache'], 'MISS')
    assert.equal(JSON.parse(second.body.toString()).version, 3)
  })

  it('caches in memory when Redis is never reachable, and moves to Redis once it appears', async () => {
    const port = await freePort()
    const a = await instance({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 500 })
    const miss = await rawRequest(a.port, '/json/never')
    const hit = await rawRequest(a.port, '/json/never')
    assert.deepEqual([miss.status, miss.headers['x-cache'], hit.headers['x-cache']], [200, 'MISS', 'HIT'])
    assert.ok(miss.ms < COMMAND_TIMEOUT_MS + SLACK && hit.ms < COMMAND_TIMEOUT_MS + SLACK, `miss ${miss.ms.toFixed(0)} ms, hit ${hit.ms.toFixed(0)} ms`)
    assert.equal(a.calls('json'), 1)
    await a.kit.invalidate({ key: '/json/never' })
    assert.equal((await rawRequest(a.port, '/json/never')).headers['x-cache'], 'MISS')
    assert.ok(['connecting', 'degraded'].includes(a.kit.state))

    const server = await RedisServer.start({ port })
    servers.push(server)
    await waitForState(a.kit, 'ready')
    const raw = testClient(port)
    raws.push(raw)
    assert.equal((await rawRequest(a.port, '/json/never')).headers['x-cache'], 'MISS', 'memory entries are not used on Redis')
    await eventually(() => isStored(raw, '/json/never'), 5000, 'stored in Redis')
    assert.equal((await rawRequest(a.port, '/json/never')).headers['x-cache'], 'HIT')
  })

  it('caches in memory when the password is wrong', async () => {
    const server = await RedisServer.start({ password: 'right-password' })
    servers.push(server)
    const a = await instance({ url: server.url, password: 'wrong-password', connectTimeoutMs: 500 })
    await a.kit.ready()
    assert.notEqual(a.kit.state, 'ready')
    const first = await rawRequest(a.port, '/png')
    const second = await rawRequest(a.port, '/png')
    assert.deepEqual([first.headers['x-cache'], second.headers['x-cache']], ['MISS', 'HIT'])
    assert.ok(second.body.equals(PNG))
    assert.ok(!a.kit.logger.lines.join('\n').includes('right-password') && !a.kit.logger.lines.join('\n').includes('wrong-password'))
  })
})
