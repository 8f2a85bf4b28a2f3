/**
 * The store below the middleware, against a real redis-server: touch throttling keeps sliding
 * expiry without an EXPIRE per request, and all/ids/length/clear use SCAN scoped to the prefix.
 */
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Kit, SessionOptions } from '../../lib/index.js'
import { fakeClock } from '../helpers/clock.js'
import { internals, testKit, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { login, redisSettled, sessionApp, sessionCookie, type SessionApp } from '../helpers/session-app.js'

const TIMEOUT = 300
const DAY_MS = 24 * 60 * 60 * 1000

type TestKit = Kit & { logger: RecordingLogger }

/** Redis's own count of a command since start-up (INFO commandstats). */
async function commandCount(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats')
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)
  return match ? Number(match[1]) : 0
}

describe('session store: touch throttling and SCAN', function () {
  let server: RedisServer
  let direct: Redis
  const kits: TestKit[] = []

  async function readyKit(options: Parameters<typeof testKit>[0] = {}): Promise<TestKit> {
    const kit = testKit({ url: server.url, commandTimeoutMs: TIMEOUT, ...options })
    kits.push(kit)
    await kit.ready()
    assert.equal(kit.state, 'ready')
    return kit
  }

  async function app(options: Partial<SessionOptions> = {}, kitOptions: Parameters<typeof testKit>[0] = {}): Promise<SessionApp> {
    return sessionApp(await readyKit(kitOptions), options)
  }

  beforeEach(async () => {
    server = await RedisServer.start()
    direct = testClient(server, { maxRetriesPerRequest: 1 }) // it reconnects by itself after a kill
  })

  afterEach(async () => {
    server.resume()
    direct.disconnect()
    await Promise.all(kits.splice(0).map((kit) => kit.close()))
    await server.stop()
  })

  describe('touch throttling', () => {
    // The test shortens the key's TTL behind the kit's back: a skipped touch leaves it short,
    // a sent touch (EXPIRE) sets it back to the full TTL.
    const SHORT = 30_000

    it('by default skips the EXPIRE right after a write: one Redis command per request, not two', async () => {
      const target = await app()
      const { cookie, sid } = await login(target, 'alice')
      await direct.pexpire(`session:${sid}`, SHORT)
      const expiresBefore = await commandCount(direct, 'expire')
      for (let i = 0; i < 5; i++) await request(target.app).get('/me').set('Cookie', cookie).expect(200)
      await redisSettled(target)
      assert.equal(await commandCount(direct, 'expire'), expiresBefore, 'no EXPIRE was sent')
      assert.ok(await direct.pttl(`session:${sid}`) <= SHORT)
    })

    it('touchAfterMs: 0 sends the EXPIRE on every request, as connect-redis does', async () => {
      const target = await app({ touchAfterMs: 0 })
      const { cookie, sid } = await login(target, 'alice')
      await direct.pexpire(`session:${sid}`, SHORT)
      const expiresBefore = await commandCount(direct, 'expire')
      for (let i = 0; i < 3; i++) await request(target.app).get('/me').set('Cookie', cookie).expect(200)
      await redisSettled(target)
      assert.equal(await commandCount(direct, 'expire') - expiresBefore, 3)
      assert.ok(await direct.pttl(`session:${sid}`) > DAY_MS - 60_000, 'the touch restored the full TTL')
    })

    it('refreshes the TTL in Redis once the last write is older than touchAfterMs (sliding expiry)', async () => {
      // The touch window is the store's arithmetic on Date.now(): a fake Date passes it. Only Date:
      // the watchdog times the live connection with performance.now(), ioredis runs on real timers.
      const clock = fakeClock(['Date'])
      const target = await app({ touchAfterMs: 1500 })
      const { cookie, sid } = await login(target, 'alice')
      await direct.pexpire(`session:${sid}`, SHORT)
      // Time passing on this instance's clock, not a wait for Redis.
      await clock.tickAsync(1700)
      await request(target.app).get('/me').set('Cookie', cookie).expect(200)
      await redisSettled(target)
      assert.ok(await direct.pttl(`session:${sid}`) > DAY_MS - 60_000, 'the touch was sent')
      // ...and right after that touch, the next ones are skipped again.
      await direct.pexpire(`session:${sid}`, SHORT)
      await request(target.app).get('/me').set('Cookie', cookie).expect(200)
      await redisSettled(target)
      assert.ok(await direct.pttl(`session:${sid}`) <= SHORT, 'the next touch was skipped')
    })

    it('a session written by another instance is touched: this instance knows nothing of its TTL', async () => {
      const a = await app()
      const b = await app()
      const { cookie, sid } = await login(a, 'alice')
      await direct.pexpire(`session:${sid}`, SHORT)
      await request(b.app).get('/me').set('Cookie', cookie).expect(200)
      await redisSettled(b)
      assert.ok(await direct.pttl(`session:${sid}`) > DAY_MS - 60_000, 'instance B refreshed the TTL')
    })

    it('a touch that shortens the expiry (the app lowered cookie.maxAge) is sent, never skipped', async () => {
      const target = await app()
      target.app.post('/forget-me', (req, res) => {
        req.session.cookie.maxAge = 2000 // e.g. "remember me" turned off: not a change express-session saves
        res.json({ ok: true })
      })
      const { cookie, sid } = await login(target, 'alice')
      assert.ok(await direct.pttl(`session:${sid}`) > DAY_MS - 60_000)
      await request(target.app).post('/forget-me').set('Cookie', cookie).expect(200)
      await redisSettled(target)
      const pttl = await direct.pttl(`session:${sid}`)
      assert.ok(pttl > 0 && pttl <= 2000, `Redis forgets the session with the cookie, got PTTL ${pttl}`)
    })

    it('with cookie.maxAge the TTL follows the cookie expiry, as connect-redis does', async () => {
      const target = await app({ cookie: { maxAge: 120_000 } })
      const { sid } = await login(target, 'alice')
      const pttl = await direct.pttl(`session:${sid}`)
      assert.ok(pttl > 110_000 && pttl <= 121_000, `TTL follows maxAge, got ${pttl}`)
    })

    it('ttlMs sets the TTL of sessions without maxAge', async () => {
      const target = await app({ ttlMs: 600_000 })
      const { sid } = await login(target, 'alice')
      const pttl = await direct.pttl(`session:${sid}`)
      assert.ok(pttl > 590_000 && pttl <= 600_000, `TTL is ttlMs, got ${pttl}`)
    })
  })

  describe('all / ids / length / clear', () => {
    it('use SCAN (never KEYS), only under the prefix, even when the prefix contains glob characters', async () => {
      const target = await app({}, { keyPrefix: 'app[1]:' })
      const sids = [(await login(target, 'u1')).sid, (await login(target, 'u2')).sid, (await login(target, 'u3')).sid]
      // `app[1]:session:*` unescaped would also match `app1:session:…`.
      await direct.set('app1:session:intruder', JSON.stringify({ cookie: {}, user: 'x' }))
      await direct.set('app[1]:other:key', 'kept')
      const store = target.middleware.store
      const scansBefore = await commandCount(direct, 'scan')

      assert.deepEqual((await store.ids()).sort(), [...sids].sort())
      assert.equal(await store.length(), 3)
      const all = await store.all()
      assert.deepEqual(all.map((s) => `${s.id}=${s.user}`).sort(), sids.map((sid, i) => `${sid}=u${i + 1}`).sort())
      assert.deepEqual(await new Promise((resolve, reject) => store.ids((error, ids) => error ? reject(error) : resolve(ids?.length))), 3)

      await store.clear()
      assert.deepEqual(await store.ids(), [])
      assert.equal(await direct.get('app1:session:intruder') !== null, true)
      assert.equal(await direct.get('app[1]:other:key'), 'kept')
      assert.ok(await commandCount(direct, 'scan') > scansBefore)
      assert.equal(await commandCount(direct, 'keys'), 0)
    })

    it('during an outage answer from this instance\'s memory; a clear then reaches Redis on recovery', async () => {
      const kitA = await readyKit()
      const a = sessionApp(kitA)
      const b = await app()
      const seenByA = await login(a, 'a1')
      const onlyOnB = await login(b, 'b1')
      const store = a.middleware.store

      server.pause()
      await request(a.app).get('/me').set('Cookie', seenByA.cookie).expect(200) // notices the hang
      assert.equal(kitA.state, 'degraded')
      assert.deepEqual(await store.ids(), [seenByA.sid])
      assert.deepEqual((await store.all()).map((s) => `${s.id}=${s.user}`), [`${seenByA.sid}=a1`])
      await store.clear()
      assert.equal(await store.length(), 0)
      await request(a.app).get('/me').set('Cookie', seenByA.cookie).expect(401)
      const afterClear = await login(a, 'a2')

      server.resume()
      await waitForState(kitA, 'ready')
      assert.equal(await direct.exists(`session:${seenByA.sid}`), 0)
      assert.equal(await direct.exists(`session:${onlyOnB.sid}`), 0, 'the clear reached sessions this instance never saw')
      assert.ok(await direct.get(`session:${afterClear.sid}`), 'a login made after the clear is kept')
      await request(b.app).get('/me').set('Cookie', afterClear.cookie).expect(200)
    })

    it('a clear that meets a Redis just hung (the kit still ready) is journaled and reaches Redis on recovery', async () => {
      const kitA = await readyKit()
      const a = sessionApp(kitA)
      const b = await app()
      const seenByA = await login(a, 'a1')
      const onlyOnB = await login(b, 'b1')

      server.pause()
      assert.equal(kitA.state, 'ready', 'nothing has noticed the hang yet')
      await a.middleware.store.clear()
      assert.equal(kitA.state, 'degraded')
      assert.equal(await a.middleware.store.length(), 0)

      server.resume()
      await waitForState(kitA, 'ready')
      assert.equal(await direct.exists(`session:${seenByA.sid}`), 0)
      assert.equal(await direct.exists(`session:${onlyOnB.sid}`), 0, 'the clear reached Redis')
      await request(b.app).get('/me').set('Cookie', onlyOnB.cookie).expect(401)
    })

    it('a clear during an outage still reaches Redis when session writes had filled the journal', async () => {
      const kitA = await readyKit({ journal: { maxEntries: 3 } })
      const a = sessionApp(kitA)
      const b = await app()
      const onlyOnB = await login(b, 'b1')
      const seenByA = await login(a, 'a0')

      server.pause()
      await request(a.app).get('/me').set('Cookie', seenByA.cookie).expect(200) // notices the hang
      for (const user of ['a1', 'a2', 'a3']) await login(a, user)
      assert.equal(internals(kitA).pending, 3, 'the journal is full of session writes')
      await a.middleware.store.clear()
      const afterClear = await login(a, 'a4')

      server.resume()
      await waitForState(kitA, 'ready')
      assert.equal(await direct.exists(`session:${onlyOnB.sid}`), 0, 'the clear reached Redis')
      assert.equal(await direct.exists(`session:${seenByA.sid}`), 0)
      assert.ok(await direct.get(`session:${afterClear.sid}`), 'a login made after the clear is kept')
    })
  })

  describe('regenerate and corrupt data', () => {
    it('regenerate at login deletes the old session in Redis and keeps the new one', async () => {
      const target = await app()
      const first = await login(target, 'alice')
      const res = await request(target.app).post('/login?user=alice&regenerate=1').set('Cookie', first.cookie).expect(200)
      const second = { cookie: sessionCookie(res.headers['set-cookie']), sid: res.body.sid as string }
      assert.notEqual(second.sid, first.sid)
      assert.equal(await direct.exists(`session:${first.sid}`), 0)
      assert.ok(await direct.get(`session:${second.sid}`))
      await request(target.app).get('/me').set('Cookie', first.cookie).expect(401)
      await request(target.app).get('/me').set('Cookie', second.cookie).expect(200)
    })

    it('a corrupt value in Redis (bad JSON, or JSON that is not a session) is "no session", logged once, never a 500', async () => {
      const kit = await readyKit()
      const target = sessionApp(kit)
      const { cookie, sid } = await login(target, 'alice')
      for (const corrupt of ['{not json', '{not json', '{}', '{"user":"x"}', '[1]', '"text"', 'null', '{"cookie":null}']) {
        await direct.set(`session:${sid}`, corrupt)
        await request(target.app).get('/me').set('Cookie', cookie).expect(401)
      }
      assert.deepEqual(target.errors, [])
      assert.equal(kit.logger.lines.filter((l) => l.includes('ERR_KIT_SESSION_READ')).length, 1)
      assert.equal(kit.state, 'ready')
    })
  })
})
