/**
 * One pass through every feature of a kit (client, sessions, rate limit, cache with tags), each
 * checked against what Redis itself then holds: for the topology tests (Sentinel, TLS, ACL), where
 * "works" means "works on that Redis", not "answered from memory".
 */
import assert from 'node:assert/strict'
import express, { type NextFunction, type Request, type Response } from 'express'
import request from 'supertest'
import type { Kit, SessionMiddleware } from '../../lib/index.js'
import { eventually } from './kit.js'
import { sessionCookie, TEST_SECRET } from './session-app.js'

/** What the checks read Redis through: any client of the server the kit should be using. */
export interface RedisReader {
  get(key: string): Promise<string | null>
  exists(...keys: string[]): Promise<number>
  scan(cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: number): Promise<[string, string[]]>
}

export interface EveryFeatureApp {
  app: express.Express
  /** Handler runs of the cached route. */
  fills: () => number
  /** Errors that reached Express's error handler (each a 500). */
  errors: unknown[]
  session: SessionMiddleware
}

/** The host of the cached requests: it is part of the cache key, and supertest gives each request a new port. */
const HOST = 'every-feature.test'

/** POST /login, GET /me, GET /limited (2 per client), GET /cached/:id (tagged `item:<id>`). */
export function everyFeatureApp(kit: Kit): EveryFeatureApp {
  const app = express()
  let fills = 0
  const errors: unknown[] = []
  const session = kit.session({ secret: TEST_SECRET })
  app.use(session)
  app.post('/login', (req, res) => { req.session.user = typeof req.query.user === 'string' ? req.query.user : 'alice'; res.json({ sid: req.sessionID }) })
  app.get('/me', (req, res) => { res.status(req.session.user ? 200 : 401).json({ user: req.session.user ?? null }) })
  app.get('/limited', kit.rateLimit({ name: 'tour', windowMs: 60_000, limit: 2, keyGenerator: (req) => String(req.headers['x-client']) }),
    (_req, res) => { res.json({ ok: true }) })
  app.get('/cached/:id', kit.cache({ ttl: 60, tags: (req) => [`item:${String(req.params.id)}`] }), (req, res) => {
    fills += 1
    res.json({ id: req.params.id, fill: fills })
  })
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => { errors.push(error); res.status(500).json({ error: String(error) }) })
  return { app, fills: () => fills, errors, session }
}

async function keysMatching(redis: RedisReader, pattern: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    found.push(...keys)
    cursor = next
  } while (cursor !== '0')
  return found
}

/**
 * Uses every feature once and asserts each effect is in Redis under `keyPrefix`: a value and a
 * counter, a login, a rate-limit count (and the 429 past it), a cached page (one fill for two
 * requests) that a tag invalidation removes. `made`: the app, when the test made it earlier (a kit
 * registers its features when they are created, and checks their rights when it connects).
 */
export async function exerciseEveryFeature(kit: Kit, redis: RedisReader, keyPrefix = '', tag = 'tour', made?: EveryFeatureApp): Promise<void> {
  assert.equal(kit.state, 'ready', 'the kit is on Redis')
  const { app, fills, errors, session } = made ?? everyFeatureApp(kit)

  await kit.client.set(`${tag}:value`, { on: 'redis' }, 600)
  assert.deepEqual(await kit.client.get(`${tag}:value`), { on: 'redis' })
  assert.equal(await kit.client.increment(`${tag}:count`, 2), 2)
  assert.equal(await redis.get(`${keyPrefix}${tag}:value`), '{"on":"redis"}', 'kit.client wrote to Redis')
  assert.equal(await redis.get(`${keyPrefix}${tag}:count`), '2')

  const login = await request(app).post(`/login?user=${tag}-user`).expect(200)
  const cookie = sessionCookie(login.headers['set-cookie'])
  const me = await request(app).get('/me').set('cookie', cookie).expect(200)
  assert.equal(me.body.user, `${tag}-user`)
  const stored = await redis.get(`${keyPrefix}session:${String(login.body.sid)}`)
  assert.ok(stored?.includes(`${tag}-user`), `the session is in Redis (${String(stored)})`)
  assert.ok((await session.store.ids()).includes(String(login.body.sid)), 'listed by ids() (SCAN)')
  assert.ok((await session.store.all()).some((entry) => JSON.stringify(entry).includes(`${tag}-user`)), 'read by all() (MGET)')

  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await request(app).get('/limited').set('x-client', tag)).status)
  assert.deepEqual(statuses, [200, 200, 429], 'the limit holds')
  assert.equal(await redis.get(`${keyPrefix}rate:tour:${tag}`), '3', 'the count is in Redis')

  const first = await request(app).get(`/cached/${tag}`).set('host', HOST).expect(200)
  // Stored once the response has gone: wait for it in Redis rather than guess how long that takes.
  await eventually(async () => (await keysMatching(redis, `${keyPrefix}cache:*`)).length > 0, 5000, 'the page stored in Redis')
  const second = await request(app).get(`/cached/${tag}`).set('host', HOST).expect(200)
  assert.deepEqual(second.body, first.body, 'the second request is a hit')
  assert.equal(fills(), 1)
  await kit.invalidate({ tag: `item:${tag}` })
  await request(app).get(`/cached/${tag}`).set('host', HOST).expect(200)
  assert.equal(fills(), 2, 'the tag invalidation reached the cache')
  await eventually(async () => (await keysMatching(redis, `${keyPrefix}cache:*`)).length > 0, 5000, 'the page stored again')
  await kit.invalidate({ prefix: '/cached/' })
  await request(app).get(`/cached/${tag}`).set('host', HOST).expect(200)
  assert.equal(fills(), 3, 'the prefix invalidation (SCAN) reached the cache')
  assert.deepEqual(errors, [])
  assert.equal(kit.state, 'ready', 'still on Redis after every feature')
}
