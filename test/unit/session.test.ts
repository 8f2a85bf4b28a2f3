/**
 * kit.session() options and secure defaults, on a kit with Redis disabled (memory only), plus
 * the journal entries it records while Redis is unreachable.
 */
import assert from 'node:assert/strict'
import request from 'supertest'
import { KitError, type Kit } from '../../lib/index.js'
import { internals, testKit, type RecordingLogger } from '../helpers/kit.js'
import { freePort } from '../helpers/redis-server.js'
import { sessionApp, sessionCookie, TEST_SECRET } from '../helpers/session-app.js'

type TestKit = Kit & { logger: RecordingLogger }

function isInvalidOption(pattern: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof KitError)
    assert.equal(error.code, 'ERR_KIT_INVALID_OPTION')
    assert.match(error.message, pattern)
    return true
  }
}

describe('kit.session(): options and secure defaults', () => {
  const kits: TestKit[] = []
  function memoryKit(env: Record<string, string> = {}): TestKit {
    const kit = testKit({ enabled: false, env })
    kits.push(kit)
    return kit
  }

  afterEach(async () => {
    await Promise.all(kits.splice(0).map((kit) => kit.close()))
  })

  it('refuses to start without a secret, naming SESSION_SECRET', () => {
    assert.throws(() => memoryKit().session(), isInvalidOption(/secret` is missing.*SESSION_SECRET/))
    assert.throws(() => memoryKit().session({ secret: '' }), isInvalidOption(/secret/))
    assert.throws(() => memoryKit().session({ secret: [] }), isInvalidOption(/secret/))
    assert.throws(() => memoryKit({ SESSION_SECRET: '  ' }).session(), isInvalidOption(/SESSION_SECRET/))
  })

  it('reads SESSION_SECRET from the kit\'s environment, not from process.env directly', async () => {
    const saved = process.env.SESSION_SECRET
    process.env.SESSION_SECRET = 'from-process-env-which-the-kit-must-not-read'
    try {
      assert.throws(() => memoryKit().session(), isInvalidOption(/SESSION_SECRET/))
    } finally {
      if (saved === undefined) delete process.env.SESSION_SECRET
      else process.env.SESSION_SECRET = saved
    }
    const kit = memoryKit({ SESSION_SECRET: TEST_SECRET })
    const { app } = sessionApp(kit, { secret: undefined })
    const res = await request(app).post('/login?user=alice').expect(200)
    await request(app).get('/me').set('Cookie', sessionCookie(res.headers['set-cookie'])).expect(200)
  })

  it('warns once about a short secret', () => {
    const kit = memoryKit()
    kit.session({ secret: 'short' })
    assert.equal(kit.logger.lines.filter((l) => l.includes('ERR_KIT_SESSION_SECRET_SHORT')).length, 1)
  })

  it('rejects unknown options with a suggestion, and a store of its own', () => {
    const kit = memoryKit()
    assert.throws(() => kit.session({ secret: TEST_SECRET, save_uninitialized: true } as never), isInvalidOption(/Did you mean `saveUninitialized`/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, store: {} } as never), isInvalidOption(/brings its own failover store/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, ttlMs: 0 }), isInvalidOption(/ttlMs/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, touchAfterMs: -1 }), isInvalidOption(/touchAfterMs/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, resave: 'yes' as never }), isInvalidOption(/resave/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, cookie: 'x' as never }), isInvalidOption(/cookie/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, unset: 'drop' as never }), isInvalidOption(/unset/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, ttl: 3600 } as never), isInvalidOption(/Did you mean `ttlMs`/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, touchAfter: 60 } as never), isInvalidOption(/Did you mean `touchAfterMs`/))
  })

  it('rejects cookie options express-session would only fail on per request', () => {
    const kit = memoryKit()
    const cookie = (value: object) => () => kit.session({ secret: TEST_SECRET, cookie: value })
    assert.throws(cookie({ maxAge: '1h' }), isInvalidOption(/cookie\.maxAge.*positive number of milliseconds/))
    assert.throws(cookie({ maxAge: -5 }), isInvalidOption(/cookie\.maxAge/))
    assert.throws(cookie({ expires: 'tomorrow' }), isInvalidOption(/cookie\.expires.*valid Date/))
    assert.throws(cookie({ sameSite: 'bogus' }), isInvalidOption(/cookie\.sameSite.*'lax', 'strict', 'none'/))
    assert.throws(cookie({ secure: 'yes' }), isInvalidOption(/cookie\.secure/))
    assert.throws(cookie({ maxage: 1000 }), isInvalidOption(/Did you mean `cookie\.maxAge`/))
    assert.throws(cookie({ domian: 'x.com' }), isInvalidOption(/not a cookie option.*Known cookie options/))
    // What express-session accepts still passes.
    kit.session({ secret: TEST_SECRET, cookie: { maxAge: 60_000, sameSite: 'strict', secure: 'auto', domain: 'example.com', priority: 'high', partitioned: true } })
    kit.session({ secret: TEST_SECRET, cookie: { maxAge: null as never, expires: undefined } })
  })

  it('rejects a touch window over half the session lifetime: active sessions would expire in Redis', () => {
    const kit = memoryKit()
    assert.throws(() => kit.session({ secret: TEST_SECRET, ttlMs: 3000, touchAfterMs: 10_000 }), isInvalidOption(/touchAfterMs.*ttlMs = 3000 ms.*at most 1500 ms/))
    assert.throws(() => kit.session({ secret: TEST_SECRET, cookie: { maxAge: 3000 }, touchAfterMs: 60_000 }), isInvalidOption(/touchAfterMs.*cookie\.maxAge = 3000 ms/))
    kit.session({ secret: TEST_SECRET, ttlMs: 3000, touchAfterMs: 1500 })
    kit.session({ secret: TEST_SECRET, cookie: { maxAge: 7 * 86_400_000 }, touchAfterMs: 86_400_000 })
  })

  it('sets an httpOnly, SameSite=Lax cookie named sid, and none for a visitor who never logs in', async () => {
    const { app } = sessionApp(memoryKit())
    const anonymous = await request(app).get('/me').expect(401)
    assert.equal(anonymous.headers['set-cookie'], undefined, 'saveUninitialized is false')
    const res = await request(app).post('/login').expect(200)
    const cookie = (res.headers['set-cookie'] as unknown as string[])[0] as string
    assert.match(cookie, /^sid=s%3A/)
    assert.match(cookie, /HttpOnly/)
    assert.match(cookie, /SameSite=Lax/)
    assert.doesNotMatch(cookie, /Secure/)
    assert.doesNotMatch(cookie, /connect\.sid/)
  })

  it('does not save an unmodified session again (resave: false)', async () => {
    const target = sessionApp(memoryKit())
    const store = target.middleware.store
    let sets = 0
    const original = store.set.bind(store)
    store.set = (...args: Parameters<typeof store.set>) => { sets++; return original(...args) }
    const cookie = sessionCookie((await request(target.app).post('/login').expect(200)).headers['set-cookie'])
    await request(target.app).get('/me').set('Cookie', cookie).expect(200)
    await request(target.app).get('/me').set('Cookie', cookie).expect(200)
    assert.equal(sets, 1)
  })

  it('in production marks the cookie Secure on HTTPS (trust proxy) and warns once about plain HTTP', async () => {
    const kit = memoryKit({ NODE_ENV: 'production' })
    const { app } = sessionApp(kit)
    const plain = await request(app).post('/login').expect(200)
    assert.doesNotMatch(String(plain.headers['set-cookie']), /Secure/)
    const https = await request(app).post('/login').set('X-Forwarded-Proto', 'https').expect(200)
    assert.match(String(https.headers['set-cookie']), /; Secure/)
    await request(app).post('/login').expect(200)
    assert.equal(kit.logger.lines.filter((l) => l.includes('ERR_KIT_SESSION_INSECURE')).length, 1)
  })

  it('passes any express-session option through', async () => {
    const { app } = sessionApp(memoryKit(), { name: 'app.sid', rolling: true, cookie: { maxAge: 60_000, sameSite: 'strict' } })
    const res = await request(app).post('/login').expect(200)
    const cookie = sessionCookie(res.headers['set-cookie'], 'app.sid')
    assert.match(String(res.headers['set-cookie']), /SameSite=Strict/)
    assert.match(String(res.headers['set-cookie']), /HttpOnly/)
    assert.match(String(res.headers['set-cookie']), /Expires=/)
    const again = await request(app).get('/me').set('Cookie', cookie).expect(200)
    assert.ok(again.headers['set-cookie'], 'rolling: true sets the cookie on every response')
  })

  it('FailoverSessionStore works on its own, with promises or callbacks, and validates its options', async () => {
    const kit = memoryKit()
    assert.throws(() => kit.sessionStore({ ttlMs: -1 }), isInvalidOption(/ttlMs/))
    const store = kit.sessionStore({ ttlMs: 60_000 })
    const cookie = { originalMaxAge: null, expires: null, httpOnly: true, path: '/' } as never
    await store.set('one', { cookie, user: 'u1' })
    await new Promise<void>((resolve, reject) => store.set('two', { cookie, user: 'u2' }, (error) => error ? reject(error) : resolve()))
    assert.equal(((await store.get('one')) as { user?: string }).user, 'u1')
    assert.equal(await store.get('missing'), null)
    await store.touch('one', { cookie })
    assert.deepEqual((await store.ids()).sort(), ['one', 'two'])
    assert.equal(await store.length(), 2)
    assert.deepEqual((await store.all()).map((s) => `${s.id}:${(s as { user?: string }).user}`).sort(), ['one:u1', 'two:u2'])
    await store.destroy('one')
    assert.deepEqual(await store.ids(), ['two'])
    await store.clear()
    assert.equal(await store.length(), 0)
  })

  it('while Redis is unreachable, journals the exact key write connect-redis would make', async () => {
    const kit = testKit({ url: `redis://127.0.0.1:${await freePort()}`, connectTimeoutMs: 200 })
    kits.push(kit)
    await kit.ready()
    assert.notEqual(kit.state, 'ready')
    const target = sessionApp(kit)
    const started = Date.now()
    const login = await request(target.app).post('/login?user=alice').expect(200)
    const sid = login.body.sid as string
    const stored = await target.middleware.store.get(sid)
    const entries = internals(kit).journal.take(1000, Infinity)?.effects ?? []
    const entry = entries.find((e) => e.kind === 'key' && e.key === `session:${sid}`)
    assert.ok(entry && entry.kind === 'key' && entry.base?.op === 'set', 'the login is journaled as a SET')
    assert.equal(entry.base.value, JSON.stringify(stored))
    assert.equal(JSON.parse(entry.base.value).user, 'alice')
    const expiresAt = entry.base.expiresAt as number
    assert.ok(expiresAt >= started + 86_400_000 && expiresAt <= Date.now() + 86_400_000, 'expires 24 h from the login')

    const cookie = sessionCookie(login.headers['set-cookie'])
    await request(target.app).post('/logout').set('Cookie', cookie).expect(200)
    const after = internals(kit).journal.take(1000, Infinity)?.effects.find((e) => e.kind === 'key' && e.key === `session:${sid}`)
    assert.ok(after && after.kind === 'key')
    assert.deepEqual(after.base, { op: 'del' })
  })
})
