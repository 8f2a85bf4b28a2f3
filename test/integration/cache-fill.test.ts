/**
 * kit.cache() fills on a real redis-server: one handler run per key however many requests miss
 * at once (in one instance and across two), stale-while-revalidate, stale-if-error, and
 * invalidation by key / prefix / tag shared by two app instances.
 */
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import request from 'supertest'
import { createCacheApp } from '../helpers/cache-app.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { eventually, testKit, waitForState } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'
import type { CacheOptions, Kit } from '../../lib/index.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('kit.cache() fills and invalidation', function () {
  this.timeout(30_000)
  let server: RedisServer
  let raw: Redis
  let kits: Kit[] = []
  let listening: Listening[] = []

  before(async () => {
    server = await RedisServer.start()
    raw = new Redis({ host: '127.0.0.1', port: server.port })
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

  /** One app instance with its own kit (its own connection) on the shared Redis. */
  async function instance(options: Partial<CacheOptions> = {}, extra: Parameters<typeof createCacheApp>[2] = {}) {
    // Semantics, not timeouts: a generous command timeout keeps a loaded machine from
    // switching the kit to memory in the middle of a test.
    const kit = testKit({ url: server.url, commandTimeoutMs: 2000 })
    kits.push(kit)
    await waitForState(kit, 'ready')
    const built = createCacheApp(kit, options, extra)
    const l = await listen(built.app)
    listening.push(l)
    return { ...built, kit, port: l.port, http: request(l.url) }
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
      a.state.slowMs = 1500
      b.state.slowMs = 10
      const first = rawRequest(a.port, '/slow/long')
      await eventually(() => a.calls('slow') === 1, 5000, 'instance A running the handler')
      const second = await rawRequest(b.port, '/slow/long')
      assert.equal(second.status, 200)
      assert.equal(second.headers['x-cache'], 'MISS')
      assert.ok(second.ms < 1200, `B answered in ${second.ms.toFixed(0)} ms, not after A`)
      assert.equal(b.calls('slow'), 1)
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
      const a = await instance({ ttl: 3, staleWhileRevalidate: 30 })
      a.state.slowMs = 0
      await a.http.get('/slow/swr').expect('x-cache', 'MISS')
      await sleep(3050)
      a.state.version = 2
      a.state.slowMs = 400 // the refresh is still running while all three are answered
      const stale = await Promise.all([1, 2, 3].map(() => a.http.get('/slow/swr').expect(200)))
      for (const reply of stale) {
        assert.equal(reply.headers['x-cache'], 'STALE')
        assert.equal(JSON.parse(reply.text).version, 1)
        assert.match(reply.headers['cache-status'] as string, /hit; ttl=-\d+; detail=stale-while-revalidate/)
      }
      assert.ok(stale.every((reply) => Number(reply.headers['content-length']) > 0))
      await eventually(async () => (await a.http.get('/slow/swr')).headers['x-cache'] === 'HIT', 5000, 'refreshed entry')
      const fresh = await a.http.get('/slow/swr').expect('x-cache', 'HIT')
      assert.equal(JSON.parse(fresh.text).version, 2)
      assert.equal(a.calls('slow'), 2, 'one background refresh for three stale answers')
    })

    it('refreshes streamed responses in the background byte for byte', async () => {
      const a = await instance({ ttl: 1, staleWhileRevalidate: 30 })
      const first = await rawRequest(a.port, '/stream')
      await sleep(1050)
      a.state.version = 2
      const stale = await rawRequest(a.port, '/stream')
      assert.equal(stale.headers['x-cache'], 'STALE')
      assert.ok(stale.body.equals(first.body))
      await eventually(async () => (await rawRequest(a.port, '/stream')).headers['x-cache'] === 'HIT', 5000, 'refreshed stream')
      const fresh = await rawRequest(a.port, '/stream')
      assert.equal(fresh.body.toString('latin1'), first.body.toString('latin1').replace('v1:', 'v2:'))
      assert.equal(a.calls('stream'), 2)
    })
  })

  describe('stale-if-error', () => {
    it('answers the stale entry when the handler fails, and the error once the window is over', async () => {
      const a = await instance({ ttl: 0.2, staleIfError: 2.5 })
      const good = await a.http.get('/flaky').expect(200)
      await sleep(250)
      a.state.failing = true
      for (const mode of ['status', 'throw', 'next'] as const) {
        a.state.failMode = mode
        const reply = await a.http.get('/flaky').expect(200)
        assert.equal(reply.text, good.text, mode)
        assert.equal(reply.headers['x-cache'], 'STALE')
        assert.match(reply.headers['cache-status'] as string, /fwd=stale; fwd-status=(503|500); ttl=-\d+; detail=stale-if-error/)
        assert.equal(reply.headers['content-type'], good.headers['content-type'])
      }
      await sleep(2700)
      a.state.failMode = 'status'
      await a.http.get('/flaky').expect(503)
      a.state.failing = false
      await a.http.get('/flaky').expect(200).expect('x-cache', 'MISS')
    })

    it('answers stale while another instance refreshes, instead of waiting', async () => {
      const a = await instance({ ttl: 0.2, staleIfError: 30 })
      const b = await instance({ ttl: 0.2, staleIfError: 30 })
      const first = await rawRequest(a.port, '/slow/updating')
      await sleep(250)
      a.state.slowMs = 800
      a.state.version = 2
      const refreshing = rawRequest(a.port, '/slow/updating')
      await eventually(() => a.calls('slow') === 2, 5000, 'instance A refreshing')
      const fromB = await rawRequest(b.port, '/slow/updating')
      assert.equal(fromB.headers['x-cache'], 'STALE')
      assert.match(String(fromB.headers['cache-status']), /detail=updating/)
      assert.ok(fromB.body.equals(first.body))
      assert.equal(b.calls('slow'), 0)
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
      a.state.slowMs = 300
      const pending = rawRequest(a.port, '/slow/racy')
      await eventually(() => a.calls('slow') === 1, 5000, 'handler started')
      await a.kit.invalidate({ key: '/slow/racy' })
      assert.equal((await pending).status, 200)
      await eventually(async () => (await raw.hexists('cache:e:/slow/racy', 'l')) === 0, 2000, 'lock released')
      assert.equal(await raw.hexists('cache:e:/slow/racy', 'b'), 0)
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
      a.state.slowMs = 300
      const pending = rawRequest(a.port, '/slow/cross')
      await eventually(() => a.calls('slow') === 1, 5000, 'handler started')
      await b.kit.invalidate({ prefix: '/slow/' })
      await pending
      // The write is attempted after the response went out: watch for a while that it never lands.
      for (let i = 0; i < 15; i++) {
        assert.equal(await raw.hexists('cache:e:/slow/cross', 'b'), 0)
        await sleep(20)
      }
      assert.equal((await rawRequest(b.port, '/slow/cross')).headers['x-cache'], 'MISS')
    })
  })
})
