/**
 * Issue 13, cache items 1–9, and the cache metrics of issue 15: each leak, poisoning or
 * correctness bug as a regression test named after it. ONE table of cases runs on a real
 * redis-server and in memory mode (enabled: false) on Express 5; the cases marked `smoke` run on
 * Express 4 as well. Leak tests assert on the OTHER user's response body.
 */
import assert from 'node:assert/strict'
import { Agent } from 'node:http'
import express from 'express'
import express4 from 'express4'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Clock as InstalledClock } from '@sinonjs/fake-timers'
import {
  floodApp, freshnessApp, homeApp, hostApp, itemsApp, jsonApp, keysApp, metricsApp, rawForwardedApp, sessionCacheApp,
  truncatedApp, welcomeApp, type ExpressFactory,
} from '../helpers/cache-safety-apps.js'
import { entryFields } from '../helpers/cache-keys.js'
import { listen, rawRequest, type Listening } from '../helpers/cache-http.js'
import { fakeClock } from '../helpers/clock.js'
import { eventually, internals, testKit, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import type { Express } from 'express'
import type { Kit } from '../../lib/index.js'

type Mode = 'redis' | 'memory'

interface Harness {
  mode: Mode
  flavour: 'express5' | 'express4'
  express: ExpressFactory
  /** A new kit on the suite's Redis, or with Redis disabled; closed after the test. */
  kit(): Promise<Kit>
  serve(app: Express): Promise<{ http: ReturnType<typeof request>; url: string; port: number }>
  /** A fake clock for the kit's own freshness windows (Date; performance too without Redis). */
  clock(): InstalledClock
  /** The suite's own Redis client (redis mode only). */
  raw: Redis | undefined
}

interface Case {
  name: string
  /** Also run on Express 4. */
  smoke?: boolean
  /** Express 5 only (a rejected promise is an unhandled rejection on Express 4). */
  express5?: boolean
  run(h: Harness): Promise<void>
}

/**
 * Resolves once `kit` has finished storing the fills it answered: a command on its connection is
 * answered after the store writes sent before it, and the next turn comes after what they set off.
 */
async function fillsStored(kit: Kit): Promise<void> {
  await kit.client.exists('test:store-barrier')
  await new Promise((resolve) => setImmediate(resolve))
}

/** How many entries (responses and Vary records) of `id` the kit holds. */
async function entryCount(h: Harness, kit: Kit, id: string): Promise<number> {
  if (h.raw) return (await entryFields(h.raw, id)).length
  return internals(kit).memory('cache').keys().filter((key) => key.startsWith(`${id}\u0000[`)).length
}

const CASES: Case[] = [
  {
    name: '1: a stale-while-revalidate refresh runs with the upstream headers (Vary, private): no one gets a logged-in or French page',
    smoke: true,
    async run(h) {
      const time = h.clock()
      const kit = await h.kit()
      const home = homeApp(kit, h.express)
      const { http } = await h.serve(home.app)
      await http.get('/home').set('Accept-Language', 'en').expect('x-cache', 'MISS')
      await http.get('/home').set('Accept-Language', 'fr').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await time.tickAsync(1100)
      // After the ttl, the first logged-in visitor meets the stale anonymous page and sets off the refresh.
      const alice = await http.get('/home').set('Accept-Language', 'en').set('Cookie', 'user=alice').expect('x-cache', 'STALE')
      assert.deepEqual(alice.body, { greeting: 'Hello', user: null })
      await eventually(() => home.ran('home') === 3, 5000, "alice's refresh ran")
      await fillsStored(kit)
      // A French visitor's refresh.
      await http.get('/home').set('Accept-Language', 'fr').expect('x-cache', 'STALE')
      await eventually(() => home.ran('home') === 4, 5000, 'the French refresh ran')
      await fillsStored(kit)
      const other = await http.get('/home').set('Accept-Language', 'en')
      assert.deepEqual(other.body, { greeting: 'Hello', user: null }, `an anonymous English visitor got ${other.text}`)
      const french = await http.get('/home').set('Accept-Language', 'fr').expect('x-cache', 'HIT')
      assert.deepEqual(french.body, { greeting: 'Bonjour', user: null }, 'the French refresh was stored as the French variant')
    },
  },
  {
    name: "2: routes that read kit.session() are not shared: bob and anonymous never get alice's page (unchanged session, visits++ without Set-Cookie)",
    smoke: true,
    async run(h) {
      const kit = await h.kit()
      const site = sessionCacheApp(kit, h.express)
      const { url } = await h.serve(site.app)
      const alice = request.agent(url)
      const bob = request.agent(url)
      await alice.post('/login?user=alice').expect(200)
      for (let i = 1; i <= 2; i++) {
        const mine = await alice.get('/whoami').expect(200)
        assert.deepEqual(mine.body, { user: 'alice' })
        assert.equal(mine.headers['x-cache'], 'BYPASS')
        assert.equal(mine.headers['cache-status'], 'express-redis-kit; fwd=bypass; detail=session')
        assert.equal(mine.headers['set-cookie'], undefined, 'an unchanged session sends no cookie')
        const visits = await alice.get('/visits').expect(200)
        assert.deepEqual(visits.body, { user: 'alice', visits: i })
        assert.equal(visits.headers['set-cookie'], undefined, 'visits++ sends no cookie either')
      }
      await bob.post('/login?user=bob').expect(200)
      assert.deepEqual((await bob.get('/whoami')).body, { user: 'bob' })
      assert.deepEqual((await bob.get('/visits')).body, { user: 'bob', visits: 1 })
      for (let i = 0; i < 2; i++) {
        assert.deepEqual((await request(url).get('/whoami')).body, { user: null }, 'anonymous')
        assert.equal((await request(url).get('/visits')).body.user, null, 'anonymous')
      }
      await request(url).get('/whoami').expect('x-cache', 'HIT') // anonymous pages are still cached
      // The opt-in: a route that is the same for every session is shared by logged-in users too.
      await alice.get('/about').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await bob.get('/about').expect('x-cache', 'HIT')
      assert.equal(site.ran('about'), 1)
    },
  },
  {
    name: '2: a response whose handler wrote to the session is not stored, though it sent no Set-Cookie',
    async run(h) {
      const kit = await h.kit()
      const site = welcomeApp(kit, h.express)
      const { http } = await h.serve(site.app)
      const carol = await http.get('/welcome').set('X-Magic-Link', 'carol').expect(200)
      assert.deepEqual(carol.body, { user: 'carol' })
      assert.equal(carol.headers['set-cookie'], undefined)
      await fillsStored(kit)
      const other = await http.get('/welcome').expect(200)
      assert.deepEqual(other.body, { user: null }, `another visitor got ${other.text}`)
      assert.equal(other.headers['x-cache'], 'MISS')
    },
  },
  {
    name: '3: a body or a 302 built from a forged X-Forwarded-Host / Host is never served to a normal request; invalidate reaches every host',
    smoke: true,
    async run(h) {
      const kit = await h.kit()
      const site = hostApp(kit, h.express)
      const { http } = await h.serve(site.app)
      const forged = await http.get('/links').set('X-Forwarded-Host', 'evil.example')
      assert.match(forged.text, /http:\/\/evil\.example\/login/)
      await http.get('/go').set('X-Forwarded-Host', 'evil.example').set('X-Forwarded-Proto', 'http').expect(302).expect('location', 'http://evil.example/login')
      await http.get('/links').set('Host', 'evil.example').expect(/evil\.example/)
      await fillsStored(kit)
      const links = await http.get('/links').expect('x-cache', 'MISS')
      assert.equal(links.text, '<a href="http://127.0.0.1/login">log in</a>')
      const go = await http.get('/go').expect(302)
      assert.equal(go.headers.location, 'http://127.0.0.1/login')
      await fillsStored(kit)
      await http.get('/links').expect('x-cache', 'HIT').expect(/127\.0\.0\.1/)
      await http.get('/links').set('X-Forwarded-Host', 'evil.example').expect('x-cache', 'HIT').expect(/evil/)
      await kit.invalidate({ key: '/links' })
      await http.get('/links').set('X-Forwarded-Host', 'evil.example').expect('x-cache', 'MISS')
      await http.get('/links').expect('x-cache', 'MISS')
    },
  },
  {
    name: '3: without trust proxy, a handler that reads X-Forwarded-Host itself still gets an entry per forwarded host; shareAcrossHosts opts out',
    async run(h) {
      const kit = await h.kit()
      const site = rawForwardedApp(kit, h.express)
      const { http } = await h.serve(site.app)
      await http.get('/raw').set('X-Forwarded-Host', 'evil.example').expect(/evil\.example/)
      await fillsStored(kit)
      const normal = await http.get('/raw')
      assert.doesNotMatch(normal.text, /evil/)
      const shared = hostApp(kit, h.express, { shareAcrossHosts: true })
      const other = await h.serve(shared.app)
      await other.http.get('/links').set('Host', 'a.example').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await other.http.get('/links').set('Host', 'b.example').expect('x-cache', 'HIT').expect(/a\.example/)
    },
  },
  {
    name: '4: after invalidate({ prefix }) the prefix is cached again',
    async run(h) {
      const kit = await h.kit()
      const site = jsonApp(kit, h.express)
      const { http } = await h.serve(site.app)
      await http.get('/json/a').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/json/a').expect('x-cache', 'HIT')
      await kit.invalidate({ prefix: '/json' })
      await http.get('/json/a').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/json/a').expect('x-cache', 'HIT')
      await http.get('/json/b').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/json/b').expect('x-cache', 'HIT')
      assert.equal(site.ran('json'), 3)
    },
  },
  {
    name: '5: a successful POST/PUT/PATCH/DELETE invalidates its URL and its same-origin Location / Content-Location; a failed one does not',
    smoke: true,
    async run(h) {
      const kit = await h.kit()
      const site = itemsApp(kit, h.express)
      const { http } = await h.serve(site.app)
      const cached = async (path: string): Promise<void> => {
        await http.get(path).expect(200)
        await fillsStored(kit)
        await http.get(path).expect('x-cache', 'HIT')
      }
      await cached('/items/1')
      await http.post('/items/1').expect(200).expect('x-cache', 'BYPASS')
      assert.equal((await http.get('/items/1').expect('x-cache', 'MISS')).body.version, 2)
      await fillsStored(kit)
      for (const method of ['put', 'patch'] as const) {
        await http[method]('/items/1').expect(200)
        await http.get('/items/1').expect('x-cache', 'MISS')
        await fillsStored(kit)
      }
      await http.post('/items/1?fail=1').expect(400)
      assert.equal((await http.get('/items/1').expect('x-cache', 'HIT')).body.version, 4, 'a failed write invalidates nothing')
      await cached('/items/7')
      await http.post('/items?id=7').expect(201).expect('location', '/items/7')
      await http.get('/items/7').expect('x-cache', 'MISS')
      await cached('/items/8')
      await http.put('/items/2?also=/items/8').expect(200)
      await http.get('/items/8').expect('x-cache', 'MISS')
      await cached('/items/9')
      await http.post('/items?id=9&origin=http://other.example').expect(201)
      await http.get('/items/9').expect('x-cache', 'HIT') // another origin's Location is not ours
      await http.delete('/items/1').expect(204)
      await http.get('/items/1').expect('x-cache', 'MISS')
    },
  },
  {
    name: "6: the handler's own Cache-Control / Expires is honoured (no-cache, max-age=0, s-maxage=0, must-revalidate, past Expires), max-age caps the ttl; ttl: 'origin'",
    async run(h) {
      const time = h.clock()
      const kit = await h.kit()
      const site = freshnessApp(kit, h.express)
      const { http } = await h.serve(site.app)
      for (const kind of ['max-age-0', 's-maxage-0', 'must-revalidate', 'no-cache', 'expired']) {
        await http.get(`/own/${kind}`).expect('x-cache', 'MISS')
        await fillsStored(kit)
        await http.get(`/own/${kind}`).expect('x-cache', 'MISS')
        assert.equal(site.ran(kind), 2, kind)
      }
      await http.get('/own/max-age-1').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/own/max-age-1').expect('x-cache', 'HIT')
      await time.tickAsync(1100)
      await http.get('/own/max-age-1').expect('x-cache', 'MISS') // max-age=1 caps the route ttl of 60 s
      // ttl: 'origin': the response's own max-age and stale-while-revalidate; nothing without them.
      await http.get('/origin/swr').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/origin/swr').expect('x-cache', 'HIT')
      await time.tickAsync(2100)
      await http.get('/origin/swr').expect('x-cache', 'STALE')
      await http.get('/origin/none').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/origin/none').expect('x-cache', 'MISS')
    },
  },
  {
    name: '6: a request with Cache-Control: no-store may read the cache but never fills it',
    async run(h) {
      const kit = await h.kit()
      const site = freshnessApp(kit, h.express)
      const { http } = await h.serve(site.app)
      const first = await http.get('/own/plain').set('Cache-Control', 'no-store').expect('x-cache', 'MISS')
      assert.match(first.headers['cache-status'] as string, /detail=no-store/)
      await fillsStored(kit)
      await http.get('/own/plain').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/own/plain').set('Cache-Control', 'no-store').expect('x-cache', 'HIT')
      assert.equal(site.ran('plain'), 2)
    },
  },
  {
    name: '7: a 200 cut short (error handler ends it after the head, with or without a 500 status; a failing stream) is never stored',
    smoke: true,
    async run(h) {
      const kit = await h.kit()
      const site = truncatedApp(kit, h.express)
      const { port } = await h.serve(site.app)
      // Express 4's router keeps no record of errors: a plain res.end() after the head looks complete there (README, Limits).
      for (const how of h.flavour === 'express5' ? ['end', 'status'] : ['status']) {
        const cut = await rawRequest(port, `/report/${how}`)
        assert.equal(cut.status, 200)
        assert.equal(cut.body.toString(), 'part-1;')
        await fillsStored(kit)
        const again = await rawRequest(port, `/report/${how}`)
        assert.equal(again.headers['x-cache'], 'MISS', how)
        assert.equal(site.ran(how), 2, how)
      }
      for (let i = 1; i <= 2; i++) {
        await rawRequest(port, '/report/stream').catch(() => undefined) // the connection is cut
        await fillsStored(kit)
        assert.equal(site.ran('stream'), i, 'never answered from the cache')
      }
    },
  },
  {
    name: '7: a 200 cut short by a rejected async handler is never stored',
    express5: true,
    async run(h) {
      const kit = await h.kit()
      const site = truncatedApp(kit, h.express)
      const { port } = await h.serve(site.app)
      assert.equal((await rawRequest(port, '/async-report')).body.toString(), 'part-1;')
      await fillsStored(kit)
      assert.equal((await rawRequest(port, '/async-report')).headers['x-cache'], 'MISS')
    },
  },
  {
    name: '8: keys follow how Express parses and routes: ?%61=evil&a=good is not ?a=good&%61=evil; spellings are invalidated together; named custom keys apart',
    smoke: true,
    async run(h) {
      const kit = await h.kit()
      const site = keysApp(kit, h.express)
      const { http } = await h.serve(site.app)
      assert.deepEqual((await http.get('/first?%61=evil&a=good')).body, { a: 'evil' })
      await fillsStored(kit)
      const victim = await http.get('/first?a=good&%61=evil')
      assert.deepEqual(victim.body, { a: 'good' }, 'parsed differently: its own entry')
      await fillsStored(kit)
      await http.get('/first?a=good&a=evil').expect('x-cache', 'HIT').expect({ a: 'good' })

      await http.get('/docs/intro').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/docs/%69ntro').expect('x-cache', 'HIT') // the same URL (RFC 3986 §6.2.2.2)
      await http.get('/DOCS/intro/').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/DOCS/intro/').expect('x-cache', 'HIT')
      await kit.invalidate({ key: '/docs/Intro' })
      await http.get('/DOCS/intro/').expect('x-cache', 'MISS')
      await http.get('/docs/intro').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await kit.invalidate({ prefix: '/Docs/' })
      await http.get('/docs/intro').expect('x-cache', 'MISS')
      await http.get('/DOCS/intro/').expect('x-cache', 'MISS')

      assert.deepEqual((await http.get('/users/1')).body, { kind: 'user', id: '1' })
      await fillsStored(kit)
      assert.deepEqual((await http.get('/posts/1').expect('x-cache', 'MISS')).body, { kind: 'post', id: '1' })
      await fillsStored(kit)
      await kit.invalidate({ key: 'users:1' })
      await http.get('/users/1').expect('x-cache', 'MISS')
      await http.get('/posts/1').expect('x-cache', 'HIT')
    },
  },
  {
    name: '9: a cache-busting flood (?cb=<random>) stays within maxVariants; a query allow-list shares what the handler does not read',
    async run(h) {
      const kit = await h.kit()
      const site = floodApp(kit, h.express, 50)
      const { port, http } = await h.serve(site.app)
      const agent = new Agent({ keepAlive: true, maxSockets: 8 })
      try {
        for (let batch = 0; batch < 25; batch++) {
          await Promise.all(Array.from({ length: 8 }, () => rawRequest(port, `/search?q=x&cb=${Math.random().toString(36).slice(2)}`, { agent })))
        }
      } finally {
        agent.destroy()
      }
      await fillsStored(kit)
      assert.equal(site.ran('search'), 200)
      const held = await entryCount(h, kit, '/search')
      assert.ok(held > 0 && held <= 50, `/search holds ${held} entries`)
      if (h.raw) assert.ok(await h.raw.zcard('cache:n:{cache:e:/search}') <= 50)

      await http.get('/list?page=2&cb=1').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/list?cb=2&page=2').expect('x-cache', 'HIT')
      await http.get('/list?page=3&cb=1').expect('x-cache', 'MISS')
      assert.equal(site.ran('list'), 2)
    },
  },
  {
    name: "10: metrics count each request's result per cache name (else route template, else 'default'), stored bytes and invalidations",
    async run(h) {
      const time = h.clock()
      const kit = await h.kit()
      const site = metricsApp(kit, h.express)
      const { http, port } = await h.serve(site.app)
      await http.get('/pages/1').expect('x-cache', 'MISS')
      await fillsStored(kit)
      await http.get('/pages/1').expect('x-cache', 'HIT')
      assert.deepEqual(kit.stats().cache.pages, { miss: 1, hit: 1 })
      assert.ok((kit.stats().cacheStoredBytes.pages ?? 0) > 0)

      for (const n of ['1', '2']) {
        await http.get(`/fresh/${n}`).expect('x-cache', 'MISS')
      }
      await fillsStored(kit)
      await time.tickAsync(1100)
      await http.get('/fresh/1').expect('x-cache', 'STALE')
      await eventually(() => site.ran('fresh') === 3, 5000, 'the refresh ran')
      await fillsStored(kit)
      await http.get('/fresh/1').expect('x-cache', 'HIT')
      assert.deepEqual(kit.stats().cache['/fresh/:n'], { miss: 2, stale: 1, revalidated: 1, hit: 1 })

      const slow = Promise.all(Array.from({ length: 4 }, () => rawRequest(port, '/slow')))
      await eventually(() => site.arrived === 4 && site.ran('slow') === 1, 5000, 'four requests in, one fill running')
      await fillsStored(kit) // the three others have read the cache and follow the fill
      site.release()
      await slow
      assert.deepEqual(kit.stats().cache.slow, { miss: 1, collapsed: 3 })

      await http.get('/everything').expect(200)
      await http.post('/everything').expect(200)
      assert.deepEqual(kit.stats().cache.default, { miss: 1, bypass: 1 })
      assert.deepEqual(Object.keys(kit.stats().cache).sort(), ['/fresh/:n', 'default', 'pages', 'slow'], 'never a URL')

      const before = kit.stats().invalidations
      await kit.invalidate({ key: '/pages/1' })
      await kit.invalidate({ prefix: '/pages/' })
      await kit.invalidate({ tag: 't' })
      const after = kit.stats().invalidations
      assert.deepEqual(['key', 'prefix', 'tag'].map((kind) => (after[kind] ?? 0) - (before[kind] ?? 0)), [1, 1, 1])
    },
  },
]

function suite(mode: Mode, flavour: 'express5' | 'express4'): void {
  const title = `${mode === 'redis' ? 'on Redis' : 'in memory mode (enabled: false)'}, ${flavour === 'express5' ? 'Express 5' : 'Express 4 (smoke)'}`
  describe(title, function () {
    this.timeout(30_000)
    let server: RedisServer | undefined
    let raw: Redis | undefined
    let kits: Kit[] = []
    let listening: Listening[] = []

    before(async () => {
      if (mode !== 'redis') return
      server = await RedisServer.start()
      raw = testClient(server)
    })
    after(async () => {
      raw?.disconnect()
      await server?.stop()
    })
    afterEach(async () => {
      await Promise.all(listening.map((l) => l.close()))
      await Promise.all(kits.map((kit) => kit.close()))
      listening = []
      kits = []
      await raw?.flushall()
    })

    const harness: Harness = {
      mode,
      flavour,
      express: flavour === 'express5' ? express : express4,
      get raw() { return raw },
      async kit() {
        // Semantics, not timeouts: a generous command timeout keeps a loaded machine on Redis.
        const kit = mode === 'redis' ? testKit({ url: (server as RedisServer).url, commandTimeoutMs: 2000 }) : testKit({ enabled: false })
        kits.push(kit)
        await waitForState(kit, mode === 'redis' ? 'ready' : 'disabled')
        return kit
      },
      async serve(app) {
        const l = await listen(app)
        listening.push(l)
        return { http: request(l.url), url: l.url, port: l.port }
      },
      // The kit's freshness windows are Date arithmetic; without Redis the memory twin's TTLs
      // (performance.now) can jump too. With Redis they stay real: its watchdog times calls with them.
      clock: () => fakeClock(mode === 'redis' ? ['Date'] : ['Date', 'performance']),
    }

    for (const test of CASES) {
      if (flavour === 'express4' && !test.smoke) continue
      if (flavour === 'express4' && test.express5) continue
      it(test.name, () => test.run(harness))
    }
  })
}

describe('kit.cache() safety (issue 13)', () => {
  suite('redis', 'express5')
  suite('memory', 'express5')
  suite('redis', 'express4')

  describe('during an outage', function () {
    this.timeout(30_000)
    let server: RedisServer
    const kits: Kit[] = []
    const listening: Listening[] = []
    after(async () => {
      await Promise.all(listening.map((l) => l.close()))
      await Promise.all(kits.map((kit) => kit.close()))
      await server.stop()
    })

    it('4: after invalidate({ prefix }) made while Redis is down, the prefix is cached in memory again (not only after recovery)', async () => {
      server = await RedisServer.start()
      const kit = testKit({ url: server.url, commandTimeoutMs: 300 })
      kits.push(kit)
      await waitForState(kit, 'ready')
      const site = jsonApp(kit, express)
      const l = await listen(site.app)
      listening.push(l)
      const http = request(l.url)
      await server.kill()
      await http.get('/json/warmup').expect(200) // the first call finds Redis gone
      await waitForState(kit, 'degraded')
      await http.get('/json/a').expect('x-cache', 'MISS')
      await http.get('/json/a').expect('x-cache', 'HIT')
      await kit.invalidate({ prefix: '/json/' })
      await http.get('/json/a').expect('x-cache', 'MISS')
      await http.get('/json/a').expect('x-cache', 'HIT')
      assert.equal(kit.state, 'degraded', 'still in the outage')
    })
  })
})
