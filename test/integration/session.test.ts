/**
 * kit.session() against a real redis-server that is killed, hung, restarted or not there yet:
 * users stay logged in, no request fails or hangs, and logins/logouts made during the outage
 * are in Redis afterwards, where another instance sees them.
 */
import assert from 'node:assert/strict'
import { RedisStore } from 'connect-redis'
import express from 'express'
import session from 'express-session'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { internals, SLACK, testKit, timed, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'
import { login, sessionApp, sessionCookie, signedCookie, TEST_SECRET, type SessionApp } from '../helpers/session-app.js'

const TIMEOUT = 300
const DAY_MS = 24 * 60 * 60 * 1000

type TestKit = Kit & { logger: RecordingLogger }

function me(target: SessionApp, cookie: string) {
  return request(target.app).get('/me').set('Cookie', cookie)
}

function noErrorLines(kit: TestKit): string[] {
  return kit.logger.lines.filter((line) => line.startsWith('error'))
}

describe('session: failover store over a real Redis', function () {
  let server: RedisServer
  let direct: Redis
  const kits: TestKit[] = []

  function newKit(url = server.url, options: Parameters<typeof testKit>[0] = {}): TestKit {
    const kit = testKit({ url, commandTimeoutMs: TIMEOUT, ...options })
    kits.push(kit)
    return kit
  }

  async function readyKit(): Promise<TestKit> {
    const kit = newKit()
    await kit.ready()
    assert.equal(kit.state, 'ready')
    return kit
  }

  beforeEach(async () => {
    server = await RedisServer.start()
    direct = testClient(server, { lazyConnect: true, maxRetriesPerRequest: 1 }) // it reconnects by itself after a kill
  })

  afterEach(async () => {
    server.resume()
    direct.disconnect()
    await Promise.all(kits.splice(0).map((kit) => kit.close()))
    await server.stop()
  })

  it('two instances share sessions while Redis is up, stored under session: for 24 h', async () => {
    const a = sessionApp(await readyKit())
    const b = sessionApp(await readyKit())
    const { cookie, sid } = await login(a, 'alice')
    assert.deepEqual((await me(b, cookie).expect(200)).body, { user: 'alice', sid })

    const raw = await direct.get(`session:${sid}`)
    assert.ok(raw, 'the session is in Redis under session:<sid>')
    assert.equal(JSON.parse(raw).user, 'alice')
    const pttl = await direct.pttl(`session:${sid}`)
    assert.ok(pttl > DAY_MS - 60_000 && pttl <= DAY_MS, `TTL is 24 h, got ${pttl} ms`)

    await request(b.app).post('/logout').set('Cookie', cookie).expect(200)
    await me(a, cookie).expect(401)
    assert.equal(await direct.exists(`session:${sid}`), 0)
    assert.deepEqual([...a.errors, ...b.errors], [])
  })

  it('Redis killed (kill -9): a logged-in user stays logged in on the same instance, with zero errors', async () => {
    const kit = await readyKit()
    const target = sessionApp(kit)
    const { cookie } = await login(target, 'alice')
    await me(target, cookie).expect(200)

    await server.kill()
    await waitForState(kit, 'degraded')
    for (let i = 0; i < 5; i++) {
      assert.equal((await me(target, cookie).expect(200)).body.user, 'alice')
    }
    // Counting visits changes the session: a save during the outage works too.
    await request(target.app).post('/visit').set('Cookie', cookie).expect(200, { visits: 1 })
    await request(target.app).post('/visit').set('Cookie', cookie).expect(200, { visits: 2 })
    // A browser whose session this instance never saw is simply not logged in.
    await me(target, signedCookie('never-seen-by-this-instance')).expect(401)

    assert.deepEqual(target.errors, [])
    assert.equal(target.disconnects, 0)
    assert.deepEqual(noErrorLines(kit), [])
  })

  it('a login made during the outage is in Redis after a restart and accepted by another instance', async () => {
    const kit = await readyKit()
    const a = sessionApp(kit)
    await server.kill()
    await waitForState(kit, 'degraded')

    const { cookie, sid } = await login(a, 'bob')
    await me(a, cookie).expect(200)
    assert.equal(internals(kit).pending > 0, true, 'the login is journaled')

    await server.start()
    await waitForState(kit, 'ready')
    const raw = await direct.get(`session:${sid}`)
    assert.ok(raw, 'the outage login was written back to Redis')
    assert.equal(JSON.parse(raw).user, 'bob')
    const pttl = await direct.pttl(`session:${sid}`)
    assert.ok(pttl > DAY_MS - 120_000 && pttl <= DAY_MS, `written back with the remaining TTL, got ${pttl} ms`)

    const b = sessionApp(await readyKit())
    assert.equal((await me(b, cookie).expect(200)).body.user, 'bob')
    assert.equal((await me(a, cookie).expect(200)).body.user, 'bob')
    assert.deepEqual([...a.errors, ...b.errors], [])
  })

  it('a logout made during the outage is not resurrected when Redis comes back (hung, data kept)', async () => {
    const kitA = await readyKit()
    const a = sessionApp(kitA)
    const b = sessionApp(await readyKit())
    const { cookie, sid } = await login(a, 'carol')
    await me(b, cookie).expect(200)

    server.pause()
    // The first request notices the hang, answers from the near-cache and degrades the kit.
    assert.equal((await me(a, cookie).expect(200)).body.user, 'carol')
    assert.equal(kitA.state, 'degraded')
    await request(a.app).post('/logout').set('Cookie', cookie).expect(200)
    await me(a, cookie).expect(401)

    server.resume()
    await waitForState(kitA, 'ready')
    assert.equal(await direct.exists(`session:${sid}`), 0, 'the logout was replayed as a DEL')
    await me(b, cookie).expect(401)
    await me(a, cookie).expect(401)
    assert.deepEqual([...a.errors, ...b.errors], [])
  })

  it('a logout during the outage on an instance that never saw the session is not undone when Redis returns', async () => {
    const kitA = await readyKit()
    const a = sessionApp(kitA)
    const b = sessionApp(await readyKit())
    const { cookie, sid } = await login(b, 'erin') // A has never seen this session

    server.pause()
    // A cannot read the session: express-session gives the request a fresh one, whose id the
    // logout destroys. The session still in Redis must be destroyed with it.
    await me(a, cookie).expect(401)
    assert.equal(kitA.state, 'degraded')
    await request(a.app).post('/logout').set('Cookie', cookie).expect(200)

    server.resume()
    await waitForState(kitA, 'ready')
    assert.equal(await direct.exists(`session:${sid}`), 0, 'the logout reached the session in Redis')
    await me(a, cookie).expect(401)
    await me(b, cookie).expect(401)
    assert.deepEqual([...a.errors, ...b.errors], [])
  })

  it('Redis hung (SIGSTOP): every response comes within the command timeout, none fails', async () => {
    const kit = await readyKit()
    const target = sessionApp(kit)
    const { cookie } = await login(target, 'dave')

    server.pause()
    const first = await timed(() => me(target, cookie))
    assert.equal(first.value.status, 200)
    assert.equal(first.value.body.user, 'dave')
    assert.ok(first.ms < TIMEOUT + SLACK, `first request after the hang took ${first.ms.toFixed(0)} ms`)

    const fresh = await timed(() => request(target.app).post('/login?user=erin'))
    assert.equal(fresh.value.status, 200)
    assert.ok(fresh.ms < TIMEOUT + SLACK, `login during the hang took ${fresh.ms.toFixed(0)} ms`)
    const erin = sessionCookie(fresh.value.headers['set-cookie'])
    const again = await timed(() => me(target, erin))
    assert.equal(again.value.body.user, 'erin')
    assert.ok(again.ms < TIMEOUT + SLACK, `request during the hang took ${again.ms.toFixed(0)} ms`)

    server.resume()
    await waitForState(kit, 'ready')
    await me(target, cookie).expect(200)
    await me(target, erin).expect(200)
    assert.deepEqual(target.errors, [])
    assert.equal(target.disconnects, 0)
  })

  it('Redis never up at start: sessions live in memory, then move to Redis when it appears', async () => {
    const port = await freePort()
    const kit = newKit(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 500 })
    await kit.ready()
    assert.notEqual(kit.state, 'ready')
    const a = sessionApp(kit)
    const { cookie, sid } = await login(a, 'frank')
    assert.equal((await me(a, cookie).expect(200)).body.user, 'frank')

    const late = await RedisServer.start({ port })
    try {
      await waitForState(kit, 'ready')
      const lateDirect = testClient(late)
      try {
        const raw = await lateDirect.get(`session:${sid}`)
        assert.ok(raw, 'the session was migrated to Redis')
        assert.equal(JSON.parse(raw).user, 'frank')
      } finally {
        lateDirect.disconnect()
      }
      const other = newKit(late.url)
      await other.ready()
      const b = sessionApp(other)
      assert.equal((await me(b, cookie).expect(200)).body.user, 'frank')
      assert.deepEqual([...a.errors, ...b.errors], [])
    } finally {
      await Promise.all(kits.splice(0).map((k) => k.close()))
      await late.stop()
    }
  })

  it('a tampered cookie is rejected', async () => {
    const target = sessionApp(await readyKit())
    const { cookie, sid } = await login(target, 'grace')
    const signed = decodeURIComponent(cookie.slice('sid='.length)) // s:<sid>.<signature>
    const signature = signed.slice(signed.indexOf('.') + 1)
    const flip = (text: string): string => text.slice(0, -1) + (text.endsWith('A') ? 'B' : 'A')
    const asCookie = (value: string): string => `sid=${encodeURIComponent(value)}`
    await me(target, asCookie(`s:${sid}.${flip(signature)}`)).expect(401) // signature altered
    await me(target, asCookie(`s:${flip(sid)}.${signature}`)).expect(401) // session id altered
    await me(target, asCookie(sid)).expect(401) // unsigned
    await me(target, signedCookie(sid, 'some-other-secret-of-sufficient-length')).expect(401) // signed with another secret
    assert.equal((await me(target, signedCookie(sid)).expect(200)).body.user, 'grace') // the helper signs like express-session
    assert.equal((await me(target, cookie).expect(200)).body.user, 'grace')
    assert.deepEqual(target.errors, [])
  })

  it('works on Express 4 (smoke test)', async () => {
    const target = sessionApp(await readyKit(), {}, 'express4')
    const { cookie, sid } = await login(target, 'heidi')
    assert.equal((await me(target, cookie).expect(200)).body.user, 'heidi')
    assert.ok(await direct.get(`session:${sid}`))
    await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
    await me(target, cookie).expect(401)
    assert.equal(await direct.exists(`session:${sid}`), 0)
    assert.deepEqual(target.errors, [])
  })

  it('a session saved during the outage is byte-for-byte what raw express-session + connect-redis write', async () => {
    // The reference: the raw stack on the same Redis, same prefix, same cookie settings.
    const raw = express()
    raw.use(session({
      store: new RedisStore({ client: direct, prefix: 'session:' }), secret: TEST_SECRET, name: 'sid',
      resave: false, saveUninitialized: false, cookie: { path: '/', httpOnly: true, sameSite: 'lax', secure: false },
    }))
    raw.post('/login', (req, res) => { req.session.user = typeof req.query.user === 'string' ? req.query.user : ''; res.json({ sid: req.sessionID }) })
    const reference = (await request(raw).post('/login?user=ivan').expect(200)).body.sid as string
    const expected = await direct.get(`session:${reference}`)

    const kit = await readyKit()
    const target = sessionApp(kit)
    await server.kill()
    await waitForState(kit, 'degraded')
    const during = await login(target, 'ivan')
    await server.start()
    await waitForState(kit, 'ready')
    const replayed = await direct.get(`session:${during.sid}`)
    assert.ok(expected && replayed)
    assert.equal(replayed, expected)
    // And the raw stack reads the replayed session back.
    const rawStore = new RedisStore({ client: direct, prefix: 'session:' })
    assert.equal((await rawStore.get(during.sid) as { user?: string }).user, 'ivan')
  })
})
