/**
 * ACL users (issue 12), created with ACL SETUSER on a private redis-server (helpers/acl.ts). A user
 * confined to the kit's key prefix works for every feature, and so does the README's minimal ACL.
 * A user missing a right the kit needs is a configuration error: the kit stays on memory, says
 * which rights and how to grant them (log and /health/redis), and a login made meanwhile is not
 * lost: it reaches Redis once the rights are granted.
 */
import assert from 'node:assert/strict'
import express from 'express'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { createAclUser, noScriptingUser, prefixLimitedUser, restrictedKeysUser, type AclUser } from '../helpers/acl.js'
import { everyFeatureApp, exerciseEveryFeature } from '../helpers/every-feature.js'
import { internals, testKit, waitForReplay, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { sessionCookie } from '../helpers/session-app.js'

/**
 * The README's minimal ACL ("ACL"), word for word: the commands of every feature on keys under
 * `app:`, nothing else (no FLUSHALL, KEYS, CONFIG, no other key, no channel).
 */
export const README_ACL = [
  'resetkeys', '~app:*', 'resetchannels', '-@all',
  '+ping', '+hello', '+client|setname', '+info',
  '+get', '+set', '+del', '+unlink', '+exists', '+incrby', '+pexpire', '+pexpireat', '+pttl', '+eval', '+evalsha',
  '+mget', '+expire', '+scan',
  '+script|load', '+incr', '+decr',
  '+hget', '+hset', '+hdel', '+hkeys', '+sadd', '+srem', '+smembers', '+zadd', '+zrem', '+zcard', '+zpopmin',
]

/** The README's shorter form by categories (it also allows SCRIPT FLUSH and FUNCTION FLUSH), which the kit's error message suggests. */
export const README_ACL_BY_CATEGORY = ['~app:*', 'resetchannels', '+@read', '+@write', '+@keyspace', '+@scripting', '+@connection', '-@dangerous', '+info']

function healthApp(kit: Kit): express.Express {
  const app = express()
  app.use('/health', kit.healthRouter({ details: true })) // these tests read the server's name and the errors
  return app
}

describe('ACL users', function () {
  this.timeout(30_000)
  let server: RedisServer
  let admin: Redis
  let kit: (Kit & { logger: RecordingLogger }) | undefined

  before(async () => {
    server = await RedisServer.start()
    admin = testClient(server)
  })

  afterEach(async () => {
    await kit?.close()
    kit = undefined
    await admin.flushall()
  })

  after(async () => {
    admin?.disconnect()
    await server?.stop()
  })

  function kitAs(user: AclUser, keyPrefix: string): Kit & { logger: RecordingLogger } {
    kit = testKit({ url: server.url, username: user.name, password: user.password, keyPrefix })
    return kit
  }

  /** Every key in the server: none may be outside the prefix. */
  async function keysOutside(prefix: string): Promise<string[]> {
    return (await admin.keys('*')).filter((key) => !key.startsWith(prefix))
  }

  it('a user limited to ~app:* with keyPrefix \'app:\' works end to end for every feature, and writes nothing outside app:', async () => {
    const user = await createAclUser(admin, prefixLimitedUser('app:'))
    const app = everyFeatureApp(kitAs(user, 'app:'))
    await (kit as Kit).ready()
    await exerciseEveryFeature(kit as Kit, admin, 'app:', 'acl', app)
    assert.deepEqual(await keysOutside('app:'), [])
  })

  for (const [form, rules] of [['minimal ACL (explicit commands, keys under app: only)', README_ACL], ['ACL by categories', README_ACL_BY_CATEGORY]] as const) {
    it(`the README's ${form} is enough for every feature`, async () => {
      await admin.call('ACL', 'SETUSER', 'minimal', 'reset', 'on', '>minimal-password', ...rules)
      await admin.call('ACL', 'LOG', 'RESET')
      kit = testKit({ url: server.url, username: 'minimal', password: 'minimal-password', keyPrefix: 'app:' })
      const app = everyFeatureApp(kit) // every feature's rights are checked when the kit connects
      await kit.ready()
      assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
      await exerciseEveryFeature(kit, admin, 'app:', 'minimal', app)
      assert.deepEqual(await admin.call('ACL', 'LOG'), [], 'no command was refused along the way')
      assert.deepEqual(await admin.keys('*kit:check*'), [], 'the rights check left no key behind')
    })
  }

  it('without @scripting: stays on memory, /health/redis and the log name the denied commands and the fix; a login made meanwhile reaches Redis once the rights are granted', async () => {
    const user = await createAclUser(admin, noScriptingUser())
    kitAs(user, '')
    const { app } = everyFeatureApp(kit as Kit)
    await (kit as Kit).ready()
    assert.equal(kit?.state, 'degraded')
    const fix = /may not run EVAL, EVALSHA \(needed by kit\.client and the outage journal of every feature\); run SCRIPT LOAD \(needed by kit\.rateLimit\(\)\).*Grant the kit's ACL/
    const health = await request(healthApp(kit as Kit)).get('/health/redis').expect(503)
    assert.match(health.body.error, fix)
    assert.match(kit?.logger.lines.join('\n') ?? '', fix)
    assert.equal(kit?.logger.lines.length, 1, 'one line')
    assert.deepEqual(await admin.keys('*kit:check*'), [], 'the refused checks left no key behind')

    const login = await request(app).post('/login?user=meanwhile').expect(200)
    const cookie = sessionCookie(login.headers['set-cookie'])
    const sid = String(login.body.sid)
    assert.equal((await request(app).get('/me').set('cookie', cookie).expect(200)).body.user, 'meanwhile')
    assert.equal((await request(app).get('/limited').set('x-client', 'x')).status, 200, 'the rate limit answers from memory, not 500')
    assert.equal(await admin.exists(`session:${sid}`), 0, 'not in Redis yet')

    await admin.call('ACL', 'SETUSER', user.name, '+@scripting')
    await waitForReplay(kit)
    const stored = await admin.get(`session:${sid}`)
    assert.ok(stored?.includes('meanwhile'), `the login made during the refusal was replayed (${String(stored)})`)
    assert.equal((await request(app).get('/me').set('cookie', cookie).expect(200)).body.user, 'meanwhile')
    assert.equal(await admin.get('rate:tour:x'), '1', 'the hit counted in memory reached Redis')
  })

  it('a user denied writes to the session keys: stays on memory naming those keys; a login made meanwhile reaches Redis once they are granted', async () => {
    const user = await createAclUser(admin, restrictedKeysUser(['app:kit:*', 'app:rate:*', 'app:cache:*', 'app:acl:*'], ['app:session:*']))
    kitAs(user, 'app:')
    const { app } = everyFeatureApp(kit as Kit)
    await (kit as Kit).ready()
    assert.equal(kit?.state, 'degraded')
    const fix = /may not write keys under 'app:session:' \(needed by kit\.session\(\)\)/
    assert.match((await request(healthApp(kit as Kit)).get('/health/redis').expect(503)).body.error, fix)
    assert.match(kit?.logger.lines.join('\n') ?? '', fix)

    const login = await request(app).post('/login?user=kept').expect(200)
    const sid = String(login.body.sid)
    await admin.call('ACL', 'SETUSER', user.name, '~app:session:*')
    await waitForReplay(kit)
    assert.ok((await admin.get(`app:session:${sid}`))?.includes('kept'), 'the login reached Redis')
  })

  it('rights taken away while the kit runs: the refused login is journaled, not lost; the kit says why and comes back once they are restored', async () => {
    const user = await createAclUser(admin, prefixLimitedUser('app:'))
    kitAs(user, 'app:')
    const { app } = everyFeatureApp(kit as Kit)
    await (kit as Kit).ready()
    assert.equal(kit?.state, 'ready')
    // Sessions become read-only for this user: a login now gets NOPERM from Redis.
    await admin.call('ACL', 'SETUSER', user.name, 'resetkeys', '~app:kit:*', '~app:rate:*', '~app:cache:*', '%R~app:session:*')
    const login = await request(app).post('/login?user=refused').expect(200)
    const sid = String(login.body.sid)
    assert.equal(kit?.state, 'degraded', 'a NOPERM is a configuration error, not a reply to pass on')
    const error = (await request(healthApp(kit as Kit)).get('/health/redis').expect(503)).body.error as string
    assert.match(error, /NOPERM.*lacks a right the kit needs/)
    const lines = () => kit?.logger.lines.join('\n') ?? ''
    assert.match(lines(), /NOPERM/)
    // The comeback's own check then names the keys, once.
    await waitForLog(() => /ERR_KIT_SERVER_REJECTED: .*may not write keys under 'app:session:'/.test(lines()))
    await admin.call('ACL', 'SETUSER', user.name, '~app:session:*')
    await waitForReplay(kit)
    assert.ok((await admin.get(`app:session:${sid}`))?.includes('refused'), 'the refused login reached Redis')
    assert.equal(kit?.logger.lines.filter((line) => line.includes('ERR_KIT_SERVER_REJECTED')).length, 1, lines())
  })
})

async function waitForLog(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms
  while (!check()) {
    if (performance.now() > deadline) throw new Error('log line not written in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
