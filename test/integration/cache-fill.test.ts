/**
 * kit.cache() fills on a real redis-server: one handler run per key however many requests miss
 * at once (in one instance and across two), stale-while-revalidate, stale-if-error, and
 * invalidation by key / prefix / tag shared by two app instances.
 */
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import request from 'supertest'
import { createCacheApp, holdSlow } from '../helpers/cache-app.js'
import { isLocked, isStored, publicHost, storedBytes } from '../helpers/cache-keys.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { fakeClock } from '../helpers/clock.js'
import { eventually, testKit, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import type { CacheOptions, Kit } from '../../lib/index.js'

/**
 * The ttl and stale windows are the kit's own arithmetic on Date.now() (stored-at times and lock
 * expiries, shared by the instances through Redis): a fake Date jumps past them. Only Date: the
 * kit's watchdog times the live Redis connection with performance.now(), and ioredis runs on real
 * timers. Redis's own expiry of an entry (ttl plus the longer stale window) stays real and, at
 * 30 s or 2.7 s, does not run out during a test.
 */
const windowClock = () => fakeClock(['Date'])

/**
 * Resolves once `kit` has finished storing the fills it has answered: the store write goes out
 * after the response, on the kit's one connection, so a command sent there now is answered after
 * it, and the next turn of the event loop comes after everything that answer set off. (Jumping the
 * clock before then would meet the fill still in progress, and requests would wait on it.)
 */
async function fillsStored(kit: Kit): Promise<void> {
  await kit.client.exists('test:store-barrier')
  await new Promise((resolve) => setImmediate(resolve))
}

describe('kit.cache() fills and invalidation', function () {
  this.timeout(30_000)
  let server: RedisServer
  let raw: Redis
  let kits: Kit[] = []
  let listening: Listening[] = []

  before(async () => {
    server = await RedisServer.start()
    raw = testClient(server)
  })
  after(async () => {
    raw.disconnect()
    await server.stop()
  })
  afterEach(async () => {
    await Promise.all(listening.map((l) => l.close()))
    await Promise.all(kits.map((kit) => kit.close()))
    listening = []
    kits = []
    await raw.flushall()
  })

  /**
   * One app instance with its own kit (its own connection) on the shared Redis, behind the same
   * public host as the others (as a load balancer would put them).
   */
  async function instance(options: Partial<CacheOptions> = {}, extra: Parameters<typeof createCacheApp>[2] = {}) {
    // Semantics, not timeouts: a generous command timeout keeps a loaded machine from
    // switching the kit to memory in the middle of a test.
    const kit = testKit({ url: server.url, commandTimeoutMs: 2000 })
    kits.push(kit)
    await waitForState(kit, 'ready')
    const built = createCacheApp(kit, options, { ...extra, before: [publicHost(), ...extra.before ?? []] })
    const l = await listen(built.app)
    listening.push(l)
    return { ...built, kit, port: l.port, http: request(l.url) }
  }

  /**
   * Resolves once a background refresh of `id` has replaced the entry `before` in Redis and the
   * kit is done with it. Asking over HTTP instead would race the refresh: a request that read the
   * old entry just before the new one landed starts a second refresh.
   */
  async function refreshed(kit: Kit, id: string, before: Buffer | null): Promise<void> {
    await eventually(async () => !(await storedBytes(raw, id))?.equals(before ?? Buffer.alloc(0)), 5000, `${id} refreshed in Redis`)
    await fillsStored(kit)
  }

  describe('stampede protection', () => {
    it('runs the handler once for 100 concurrent misses of one key', async () => {
      const a = await instance()
      a.state.slowMs = 150
      const replies = await Promise.all(Array.from({ length: 100 }, () => rawRequest(a.port, '/slow/hot')))
      assert.equal(a.calls('slow'), 1)
      assert.ok(replies.every((r) => r.status === 200 && r.body.equals((replies[0] as typeof r).body)))
      const labels = replies.map((r) => r.headers['x-cache'])
      assert.equal(labels.filter((l) => l === 'MISS').length, 1)
      assert.equal(labels.filter((l) => l === 'HIT').length, 99)
      assert.ok(replies.some((r) => /collapsed/.test(String(r.headers['cache-status']))))
    })

    it('does not share one variant with concurrent requests for another', async () => {
      const a = await instance()
      const languages = Array.from({ length: 40 }, (_, i) => (i % 2 ? 'en' : 'fr'))
      const replies = await Promise.all(languages.map((language) => rawRequest(a.port, '/vary', { headers: { 'accept-language': language } })))
      replies.forEach((reply, i) => assert.equal(JSON.parse(reply.body.toString()).language, languages[i]))
      assert.ok(a.calls('vary') >= 2 && a.calls('vary') < 40, `handler ran ${a.calls('vary')} times`)
    })

    it('lets one instance fill while another waits for its entry', async () => {
      const a = await instance()
      const b = await instance()
      a.state.slowMs = 300
      const first = rawRequest(a.port, '/slow/shared')
      await eventually(() => a.calls('slow') === 1, 5000, 'instance A running the handler')
      const second = await rawRequest(b.port, '/slow/shared')
      const firstReply = await first
      assert.equal(b.calls('slow'), 0, 'instance B did not run the handler')
      assert.ok(second.body.equals(firstReply.body))
      assert.equal(second.headers['x-cache'], 'HIT')
      assert.match(String(second.headers['cache-status']), /detail=filled-elsewhere/)
    })

    it('runs the handler itself, unstored, when the other instance takes longer than lockWaitMs', async () => {
      const a = await instance()
      const b = await instance({ lockWaitMs: 100 })
      const releaseA = holdSlow(a.state) // A's fill runs until B has answered
      b.state.slowMs = 10
      let aAnswered = false
      const first = rawRequest(a.port, '/slow/long').finally(() => { aAnswered = true })
      await eventually(() => a.calls('slow') === 1, 5000, 'instance A running the handler')
      const second = await rawRequest(b.port, '/slow/long')
      assert.equal(second.status, 200)
      assert.equal(second.headers['x-cache'], 'MISS')
      assert.equal(aAnswered, false, 'B answered while A was still filling, not after it')
      assert.equal(b.calls('slow'), 1)
      releaseA()
      await first
      const stored = await rawRequest(b.port, '/slow/long')
      assert.equal(stored.headers['x-cache'], 'HIT', 'A stored the entry')
      assert.equal(b.calls('slow'), 1)
    })
  })

  describe('stale-while-revalidate', () => {
    it('answers stale at once and refreshes the entry in the background, once', async () => {
      // A 3 s ttl keeps the refreshed entry fresh long enough to be seen on a loaded machine
      // (with 1 s, a stall of a second let it go stale again and start a second refresh).
      const clock = windowClock()
      const a = await instance({ ttl: 3, staleWhileRevalidate: 30 })
      a.state.slowMs = 0
      await a.http.get('/slow/swr').expect('x-cache', 'MISS')
      await fillsStored(a.kit)
      const before = await storedBytes(raw, '/slow/swr')
      await clock.tickAsync(3050)
      a.state.version = 2
      const release = holdSlow(a.state) // the refresh is still running while all three are answered
      const stale = await Promise.all([1, 2, 3].map(() => a.http.get('/slow/swr').expect(200)))
      for (const reply of stale) {
        assert.equal(reply.headers['x-cache'], 'STALE')
        assert.equal(JSON.parse(reply.text).version, 1)
        assert.match(reply.headers['cache-status'] as string, /hit; ttl=-\d+; detail=stale-while-revalidate/)
      }
      assert.ok(stale.every((reply) => Number(reply.headers['content-length']) > 0))
      release()
      await refreshed(a.kit, '/slow/swr', before)
      const fresh = await a.http.get('/slow/swr').expect('x-cache', 'HIT')
      assert.equal(JSON.parse(fresh.text).version, 2)
      assert.equal(a.calls('slow'), 2, 'one background refresh for three stale answers')
    })

    it('refreshes streamed responses in the background byte for byte', async () => {
      const clock = windowClock()
      const a = await instance({ ttl: 1, staleWhileRevalidate: 30 })
      const first = await rawRequest(a.port, '/stream')
      await fillsStored(a.kit)
      const before = await storedBytes(raw, '/stream')
      await clock.tickAsync(1050)
      a.state.version = 2
      const stale = await rawRequest(a.port, '/stream')
      assert.equal(stale.headers['x-cache'], 'STALE')
      assert.ok(stale.body.equals(first.body))
      await refreshed(a.kit, '/stream', before)
      const fresh = await rawRequest(a.port, '/stream')
      assert.equal(fresh.headers['x-cache'], 'HIT')
      assert.equal(fresh.body.toString('latin1'), first.body.toString('latin1').replace('v1:', 'v2:'))
      assert.equal(a.calls('stream'), 2)
    })
  })

  describe('stale-if-error', () => {
    it('answers the stale entry when the handler fails, and the error once the window is over', async () => {
      const clock = windowClock()
      const a = await instance({ ttl: 0.2, staleIfError: 2.5 })
      const good = await a.http.get('/flaky').expect(200)
      await fillsStored(a.kit)
      await clock.tickAsync(250)
      a.state.failing = true
      for (const mode of ['status', 'throw', 'next'] as const) {
        a.state.failMode = mode
        const reply = await a.http.get('/flaky').expect(200)
        assert.equal(reply.text, good.text, mode)
        assert.equal(reply.headers['x-cache'], 'STALE')
        assert.match(reply.headers['cache-status'] as string, /fwd=stale; fwd-status=(503|500); ttl=-\d+; detail=stale-if-error/)
        assert.equal(reply.headers['content-type'], good.headers['content-type'])
      }
      await clock.tickAsync(2700) // past ttl + staleIfError, counted from the fill
      a.state.failMode = 'status'
      await a.http.get('/flaky').expect(503)
      a.state.failing = false
      await a.http.get('/flaky').expect(200).expect('x-cache', 'MISS')
    })

    it('answers stale while another instance refreshes, instead of waiting', async () => {
      const clock = windowClock()
      const a = await instance({ ttl: 0.2, staleIfError: 30 })
      const b = await instance({ ttl: 0.2, staleIfError: 30 })
      const first = await rawRequest(a.port, '/slow/updating')
      await fillsStored(a.kit)
      await clock.tickAsync(250)
      const releaseA = holdSlow(a.state) // A is still refreshing while B answers
      a.state.version = 2
      const refreshing = rawRequest(a.port, '/slow/updating')
      await eventually(() => a.calls('slow') === 2, 5000, 'instance A refreshing')
      const fromB = await rawRequest(b.port, '/slow/updating')
      assert.equal(fromB.headers['x-cache'], 'STALE')
      assert.match(String(fromB.headers['cache-status']), /detail=updating/)
      assert.ok(fromB.body.equals(first.body))
      assert.equal(b.calls('slow'), 0)
      releaseA()
      assert.equal(JSON.parse((await refreshing).body.toString()).version, 2)
    })
  })

  describe('invalidation', () => {
    it('removes one key with every Vary variant, a prefix, or a tag', async () => {
      const a = await instance({}, { routeOptions: { tagged: { tags: (req) => [`item:${String(req.params.id)}`, 'items'] } } })
      for (const path of ['/tagged/1', '/tagged/2', '/json/a', '/json/b', '/text']) await a.http.get(path).expect('x-cache', 'MISS')
      for (const language of ['en', 'fr']) await a.http.get('/vary').set('Accept-Language', language).expect('x-cache', 'MISS')

      await a.kit.invalidate({ key: '/vary' })
      for (const language of ['en', 'fr']) await a.http.get('/vary').set('Accept-Language', language).expect('x-cache', 'MISS')

      await a.kit.invalidate({ tag: 'item:1' })
      await a.http.get('/tagged/1').expect('x-cache', 'MISS')
      await a.http.get('/tagged/2').expect('x-cache', 'HIT')
      await a.kit.invalidate({ tag: 'items' })
      await a.http.get('/tagged/2').expect('x-cache', 'MISS')

      await a.kit.invalidate({ prefix: '/json/' })
      await a.http.get('/json/a').expect('x-cache', 'MISS')
      await a.http.get('/json/b').expect('x-cache', 'MISS')
      await a.http.get('/text').expect('x-cache', 'HIT')
      assert.equal(await raw.exists('cache:t:items'), 1, 'tag index kept in Redis')
    })

    it('normalizes the key it is given like request URLs', async () => {
      const a = await instance()
      await a.http.get('/json/n?b=1&a=2').expect('x-cache', 'MISS')
      await a.kit.invalidate({ key: '/json/n?b=1&a=2' })
      await a.http.get('/json/n?a=2&b=1').expect('x-cache', 'MISS')
    })

    it('rejects a target that is not exactly one of key, prefix, tag', async () => {
      const a = await instance()
      for (const bad of [{}, { key: '' }, { key: '/a', tag: 'b' }, { tags: 'x' }, null]) {
        await assert.rejects(a.kit.invalidate(bad as never), (error: Error & { code?: string }) => error.code === 'ERR_KIT_INVALID_ARGUMENT')
      }
    })

    it('keeps a response out of the cache when its key was invalidated while the handler ran', async () => {
      const a = await instance()
      const release = holdSlow(a.state)
      const pending = rawRequest(a.port, '/slow/racy')
      await eventually(() => a.calls('slow') === 1, 5000, 'handler started')
      await a.kit.invalidate({ key: '/slow/racy' })
      release()
      assert.equal((await pending).status, 200)
      await eventually(async () => !(await isLocked(raw, '/slow/racy')), 2000, 'lock released')
      assert.equal(await isStored(raw, '/slow/racy'), false)
      const next = await rawRequest(a.port, '/slow/racy')
      assert.equal(next.headers['x-cache'], 'MISS')
    })

    it('shares entries and invalidations between two app instances on one Redis', async () => {
      const tags = { tags: (req: { params: Record<string, string> }) => [`item:${req.params.id as string}`] } as Partial<CacheOptions>
      const a = await instance(tags)
      const b = await instance(tags)
      const filled = await a.http.get('/tagged/9').expect('x-cache', 'MISS')
      const shared = await b.http.get('/tagged/9').expect('x-cache', 'HIT')
      assert.equal(shared.text, filled.text)
      assert.equal(b.calls('tagged'), 0)

      await b.kit.invalidate({ tag: 'item:9' })
      await a.http.get('/tagged/9').expect('x-cache', 'MISS')
      await b.http.get('/tagged/9').expect('x-cache', 'HIT')

      await a.http.get('/json/shared').expect('x-cache', 'MISS')
      await a.kit.invalidate({ key: '/json/shared' })
      await b.http.get('/json/shared').expect('x-cache', 'MISS')
      await b.kit.invalidate({ prefix: '/json/' })
      await a.http.get('/json/shared').expect('x-cache', 'MISS')
    })

    it('keeps a response out of the cache when another instance invalidated it during the fill', async () => {
      const a = await instance()
      const b = await instance()
      const release = holdSlow(a.state)
      const pending = rawRequest(a.port, '/slow/cross')
      await eventually(() => a.calls('slow') === 1, 5000, 'handler started')
      await b.kit.invalidate({ prefix: '/slow/' })
      release()
      await pending
      await fillsStored(a.kit) // A has attempted its write by now
      assert.equal(await isStored(raw, '/slow/cross'), false, 'the write never landed')
      assert.equal((await rawRequest(b.port, '/slow/cross')).headers['x-cache'], 'MISS')
    })
  })
})
