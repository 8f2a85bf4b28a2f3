/**
 * Issue 13, sessions: each regression test is named after the bug it guards against, and runs on a
 * real redis-server and in memory mode (Redis disabled), on Express 5 with an Express 4 smoke test.
 *
 * - item 2: kit.session() marks a request whose loaded session holds data (kit.cache() reads it);
 * - item 10: kit.login() regenerates: a cookie planted before the login never becomes the user's session;
 * - item 11: a logout is not undone by a request that loaded the session before it and saves after it
 *   (tombstones on Redis, in memory, and across an outage's replay);
 * - item 12: a stored session with an invalid cookie is "no session", never a hang or an unhandled rejection;
 * - item 13: with `env` given to createKit, a missing NODE_ENV falls back to process.env.NODE_ENV.
 */
import assert from 'node:assert/strict'
import express, { type NextFunction, type Request, type Response } from 'express'
import type { Redis } from 'ioredis'
import request from 'supertest'
import { KitError, type Kit, type KitOptions, type SessionOptions } from '../../lib/index.js'
import { internals, testKit, waitForReplay, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { sessionCookie, TEST_SECRET } from '../helpers/session-app.js'

type TestKit = Kit & { logger: RecordingLogger }
type Mode = 'redis' | 'memory'
type Flavour = 'express5' | 'express4'

const TIMEOUT = 300
const SESSION_IN_USE = Symbol.for('express-redis-kit.sessionInUse')

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

interface SafetyApp {
  app: express.Express
  kit: TestKit
  errors: unknown[]
  /** Requests to POST /slow-visit wait here, after their session is loaded, until `release()`. */
  slow: { arrived: Promise<void>; release: () => void }
}

/** POST /login?user=x (kit.login), GET /me, POST /slow-visit (modifies the session when released), POST /logout (kit.logout). */
function safetyApp(kit: TestKit, flavour: Flavour = 'express5', options: Partial<SessionOptions> = {}): SafetyApp {
  // express4 (an alias of express@4) ships no types; its app has the same surface used here.
  const app = flavour === 'express4' ? (require('express4') as () => express.Express)() : express()
  const arrived = deferred()
  const released = deferred()
  const state: SafetyApp = { app, kit, errors: [], slow: { arrived: arrived.promise, release: released.resolve } }
  app.set('trust proxy', 1)
  app.use(kit.session({ secret: TEST_SECRET, ...options }))
  const wrap = (handler: (req: Request, res: Response) => Promise<void> | void) => (req: Request, res: Response, next: NextFunction) => {
    Promise.resolve(handler(req, res)).catch(next)
  }
  app.post('/login', wrap(async (req, res) => {
    await kit.login(req, { user: typeof req.query.user === 'string' ? req.query.user : 'alice' })
    res.json({ user: req.session.user, sid: req.sessionID })
  }))
  app.get('/me', (req: Request, res: Response) => {
    const marked = (req as unknown as Record<symbol, unknown>)[SESSION_IN_USE] === true
    if (req.session.user === undefined) res.status(401).json({ user: null, marked })
    else res.json({ user: req.session.user, sid: req.sessionID, marked })
  })
  app.post('/visit', (req: Request, res: Response) => {
    req.session.visits = (req.session.visits ?? 0) + 1
    res.json({ visits: req.session.visits, sid: req.sessionID })
  })
  app.post('/slow-visit', wrap(async (req, res) => {
    arrived.resolve()
    await released.promise
    req.session.visits = (req.session.visits ?? 0) + 1 // a change express-session saves as the response ends
    res.json({ visits: req.session.visits })
  }))
  app.post('/logout', wrap(async (req, res) => {
    await kit.logout(req, res)
    res.json({ ok: true })
  }))
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    state.errors.push(error)
    res.status(500).json({ error: String(error) })
  })
  return state
}

async function login(target: SafetyApp, user: string, cookie?: string): Promise<{ cookie: string; sid: string }> {
  const req = request(target.app).post(`/login?user=${user}`)
  if (cookie) req.set('Cookie', cookie)
  const res = await req.expect(200)
  return { cookie: sessionCookie(res.headers['set-cookie']), sid: res.body.sid as string }
}

function me(target: SafetyApp, cookie: string) {
  return request(target.app).get('/me').set('Cookie', cookie)
}

describe('session safety (issue 13)', function () {
  let server: RedisServer
  let direct: Redis
  const kits: TestKit[] = []

  function newKit(mode: Mode, options: Partial<KitOptions> = {}): TestKit {
    const kit = testKit(mode === 'redis' ? { url: server.url, commandTimeoutMs: TIMEOUT, ...options } : { enabled: false, ...options })
    kits.push(kit)
    return kit
  }

  async function readyKit(mode: Mode, options: Partial<KitOptions> = {}): Promise<TestKit> {
    const kit = newKit(mode, options)
    await kit.ready()
    assert.equal(kit.state, mode === 'redis' ? 'ready' : 'disabled')
    return kit
  }

  /** Whether the session is stored where the kit keeps it: Redis, or its memory twin. */
  async function stored(kit: TestKit, mode: Mode, sid: string): Promise<boolean> {
    if (mode === 'redis') return await direct.exists(`session:${sid}`) === 1
    return internals(kit).memory('session').has(`session:${sid}`)
  }

  beforeEach(async () => {
    server = await RedisServer.start({ persist: true })
    direct = testClient(server, { maxRetriesPerRequest: 1 })
  })

  afterEach(async () => {
    direct.disconnect()
    await Promise.all(kits.splice(0).map((kit) => kit.close()))
    await server.stop()
  })

  for (const mode of ['redis', 'memory'] as const) {
    describe(`on ${mode === 'redis' ? 'a real Redis' : 'memory (Redis disabled)'}`, () => {
      it('item 2: a request whose loaded session holds data is marked for kit.cache(); an empty one is not', async () => {
        for (const flavour of ['express5', 'express4'] as const) {
          const target = safetyApp(await readyKit(mode), flavour)
          assert.equal((await request(target.app).get('/me').expect(401)).body.marked, false, `${flavour}: anonymous`)
          const { cookie } = await login(target, 'alice')
          assert.equal((await me(target, cookie).expect(200)).body.marked, true, `${flavour}: logged in`)
          await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
          assert.equal((await me(target, cookie).expect(401)).body.marked, false, `${flavour}: logged out`)
          assert.deepEqual(target.errors, [])
        }
      })

      it('item 10: a session cookie planted before the login never becomes alice\'s session (kit.login regenerates)', async () => {
        const target = safetyApp(await readyKit(mode))
        // The attacker gets a valid session of their own and plants its cookie in alice's browser.
        const planted = await request(target.app).post('/visit').expect(200)
        const attacker = { cookie: sessionCookie(planted.headers['set-cookie']), sid: planted.body.sid as string }
        const alice = await login(target, 'alice', attacker.cookie)
        assert.notEqual(alice.sid, attacker.sid, 'the login gave a new session id')
        await me(target, attacker.cookie).expect(401) // the attacker is not alice
        assert.equal((await me(target, alice.cookie).expect(200)).body.user, 'alice')
        assert.equal(await stored(target.kit, mode, attacker.sid), false, 'the planted session is gone')
        // Saved before kit.login() resolved: the answer came after the write.
        assert.equal(await stored(target.kit, mode, alice.sid), true)
        assert.deepEqual(target.errors, [])
      })

      it('item 10: kit.logout() destroys the session and clears the cookie; misuse is ERR_KIT_INVALID_ARGUMENT', async () => {
        const kit = await readyKit(mode)
        const target = safetyApp(kit)
        const { cookie, sid } = await login(target, 'alice')
        const out = await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
        assert.match(String(out.headers['set-cookie']), /^sid=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax$/)
        assert.equal(await stored(kit, mode, sid), false)
        await me(target, cookie).expect(401)

        const bare = express()
        bare.post('/login', (req, res) => {
          kit.login(req, { user: 'x' }).then(() => res.sendStatus(204), (error: unknown) => res.status(500).json({ code: (error as KitError).code, message: (error as Error).message }))
        })
        const res = await request(bare).post('/login').expect(500)
        assert.equal(res.body.code, 'ERR_KIT_INVALID_ARGUMENT')
        assert.match(res.body.message, /mount kit\.session\(\)/)
        target.app.post('/login-bad', (req, res) => {
          kit.login(req, { cookie: {} } as never).then(() => res.sendStatus(204), (error: unknown) => res.status(500).json({ code: (error as KitError).code }))
        })
        assert.equal((await request(target.app).post('/login-bad').expect(500)).body.code, 'ERR_KIT_INVALID_ARGUMENT')
      })

      it('item 10: kit.login() and kit.logout() on Express 4 (smoke test)', async () => {
        const target = safetyApp(await readyKit(mode), 'express4')
        const planted = await request(target.app).post('/visit').expect(200)
        const plantedCookie = sessionCookie(planted.headers['set-cookie'])
        const alice = await login(target, 'alice', plantedCookie)
        await me(target, plantedCookie).expect(401)
        await me(target, alice.cookie).expect(200)
        await request(target.app).post('/logout').set('Cookie', alice.cookie).expect(200)
        await me(target, alice.cookie).expect(401)
        assert.deepEqual(target.errors, [])
      })

      it('item 11: a logout is not undone by a request that loaded the session before it and modifies it after', async () => {
        for (const flavour of ['express5', 'express4'] as const) {
          const kit = await readyKit(mode)
          const target = safetyApp(kit, flavour)
          const { cookie, sid } = await login(target, 'alice')
          // Both requests really in flight: the slow one has loaded the session and waits.
          const slow = request(target.app).post('/slow-visit').set('Cookie', cookie).then((res) => res)
          await target.slow.arrived
          await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
          target.slow.release()
          assert.equal((await slow).status, 200, 'the slow request ends normally') // its save was refused, not failed
          await me(target, cookie).expect(401)
          assert.equal(await stored(kit, mode, sid), false, `${flavour}: the destroyed session was not saved back`)
          assert.deepEqual(target.errors, [])
        }
      })

      it('item 12: a stored session with an invalid cookie is "no session", logged once, never a hang or an unhandled rejection', async () => {
        const rejections: unknown[] = []
        const onRejection = (reason: unknown): void => { rejections.push(reason) }
        process.on('unhandledRejection', onRejection)
        try {
          for (const flavour of ['express5', 'express4'] as const) {
            const kit = await readyKit(mode)
            const target = safetyApp(kit, flavour)
            const { cookie, sid } = await login(target, 'alice')
            const bad = [{ originalMaxAge: 'x' }, { expires: 'garbage' }, { originalMaxAge: 'x', expires: 'garbage' }, { maxAge: 'x' }, { httpOnly: 'yes' }, []]
            for (const value of bad) {
              const text = JSON.stringify({ cookie: value, user: 'alice' })
              if (mode === 'redis') await direct.set(`session:${sid}`, text, 'EX', 600)
              else internals(kit).memory('session').set(`session:${sid}`, text, 600_000)
              await me(target, cookie).timeout(5000).expect(401)
              const visit = await request(target.app).post('/visit').set('Cookie', cookie).timeout(5000).expect(200)
              assert.notEqual(visit.body.sid, sid, `${JSON.stringify(value)}: a new session, not the broken one`)
            }
            assert.deepEqual(target.errors, [], flavour)
            assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_SESSION_READ')).length, 1, `${flavour}: logged once`)
          }
          // A rejection nobody handled is reported on a later turn of the event loop.
          await new Promise((resolve) => setImmediate(resolve))
          assert.deepEqual(rejections, [])
        } finally {
          process.off('unhandledRejection', onRejection)
        }
      })
    })
  }

  describe('item 11 across an outage (kill -9, then restart with the data on disk)', () => {
    it('a logout made during the outage holds against a request that saves after it, and after the replay', async () => {
      const kit = await readyKit('redis')
      const target = safetyApp(kit)
      const { cookie, sid } = await login(target, 'alice')
      const slow = request(target.app).post('/slow-visit').set('Cookie', cookie).then((res) => res)
      await target.slow.arrived
      await server.kill()
      await waitForState(kit, 'degraded')
      await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
      target.slow.release()
      assert.equal((await slow).status, 200)
      await me(target, cookie).expect(401)

      await server.start()
      await waitForReplay(kit)
      assert.equal(await direct.exists(`session:${sid}`), 0, 'the journaled logout reached Redis; the late save did not')
      await me(target, cookie).expect(401)
      assert.deepEqual(target.errors, [])
    })

    it('a save journaled during the outage does not resurrect a session another instance destroyed before it', async () => {
      const kitA = await readyKit('redis')
      const a = safetyApp(kitA)
      const b = safetyApp(await readyKit('redis'))
      const { cookie, sid } = await login(a, 'alice')
      const slow = request(a.app).post('/slow-visit').set('Cookie', cookie).then((res) => res)
      await a.slow.arrived
      await request(b.app).post('/logout').set('Cookie', cookie).expect(200) // on Redis: A does not hear of it

      await server.kill()
      await waitForState(kitA, 'degraded')
      a.slow.release()
      assert.equal((await slow).status, 200)
      assert.ok(internals(kitA).pending > 0, 'A journaled the save: it never saw the logout')

      await server.start()
      await waitForReplay(kitA)
      assert.equal(await direct.exists(`session:${sid}`), 0, 'the replayed save was undone by the tombstone check')
      await me(a, cookie).expect(401)
      await me(b, cookie).expect(401)
      assert.deepEqual([...a.errors, ...b.errors], [])
    })
  })

  describe('item 13: NODE_ENV from process.env when the kit\'s env has none', () => {
    const saved = process.env.NODE_ENV
    afterEach(() => {
      if (saved === undefined) delete process.env.NODE_ENV
      else process.env.NODE_ENV = saved
    })

    for (const mode of ['redis', 'memory'] as const) {
      it(`on ${mode}: a production process gets a Secure cookie on HTTPS and the ERR_KIT_SESSION_INSECURE warning`, async () => {
        process.env.NODE_ENV = 'production'
        const kit = await readyKit(mode, { env: { SESSION_SECRET: TEST_SECRET } })
        const target = safetyApp(kit)
        const plain = await request(target.app).post('/login').expect(200)
        assert.doesNotMatch(String(plain.headers['set-cookie']), /Secure/)
        assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_SESSION_INSECURE')).length, 1)
        const https = await request(target.app).post('/login').set('X-Forwarded-Proto', 'https').expect(200)
        assert.match(String(https.headers['set-cookie']), /; Secure/)
      })
    }

    it('NODE_ENV in the kit\'s env still wins over process.env', async () => {
      process.env.NODE_ENV = 'production'
      const kit = await readyKit('memory', { env: { NODE_ENV: 'development' } })
      const https = await request(safetyApp(kit).app).post('/login').set('X-Forwarded-Proto', 'https').expect(200)
      assert.doesNotMatch(String(https.headers['set-cookie']), /Secure/)
      assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_SESSION_INSECURE')).length, 0)
    })

    it('on Express 4 (smoke test)', async () => {
      process.env.NODE_ENV = 'production'
      const kit = await readyKit('memory')
      const https = await request(safetyApp(kit, 'express4').app).post('/login').set('X-Forwarded-Proto', 'https').expect(200)
      assert.match(String(https.headers['set-cookie']), /; Secure/)
    })
  })
})
