/**
 * kit.rateLimit() without Redis: start-up validation, name collisions, and a kit with Redis
 * disabled on purpose (memory counts with the full limit, whatever onRedisDown says).
 */
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import { MemoryStore } from 'express-rate-limit'
import { Cluster } from 'ioredis'
import { KitError, type RateLimitOptions } from '../../lib/index.js'
import { testKit } from '../helpers/kit.js'
import { draft8, hit, hits, listen, rateLimitedApp } from '../helpers/rate-limit-app.js'

function rejects(options: unknown, ...fragments: string[]): void {
  const kit = testKit({ enabled: false })
  try {
    assert.throws(() => kit.rateLimit(options as Partial<RateLimitOptions>), (error: unknown) => {
      assert.ok(error instanceof KitError, String(error))
      assert.equal(error.code, 'ERR_KIT_INVALID_OPTION')
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" lacks "${fragment}"`)
      return true
    })
  } finally {
    void kit.close()
  }
}

describe('kit.rateLimit() options', () => {
  it('rejects a wrong onRedisDown, suggesting the right spelling', () => {
    rejects({ onRedisDown: 'Deny' }, '`onRedisDown`', "Did you mean 'deny'?")
    rejects({ onRedisDown: 'fail-open' }, '`onRedisDown`', "'memory'", "'allow'", "'deny'")
  })

  it('rejects a misspelt store option instead of ignoring it', () => {
    rejects({ on_redis_down: 'allow' }, '`on_redis_down`', 'Did you mean `onRedisDown`?')
    rejects({ Instances: 2 }, 'Did you mean `instances`?')
  })

  it('rejects instances that are not a whole number, or that go with allow/deny', () => {
    rejects({ instances: 0 }, '`instances`', 'whole number')
    rejects({ instances: 1.5 }, '`instances`')
    rejects({ instances: '2' }, '`instances`')
    rejects({ instances: 2, onRedisDown: 'deny' }, '`instances`', "onRedisDown: 'memory'")
  })

  it('rejects a window Redis would refuse and a limit that cannot work', () => {
    rejects({ windowMs: 1500.5 }, '`windowMs`', 'whole number of milliseconds')
    rejects({ windowMs: 0 }, '`windowMs`')
    rejects({ limit: -1 }, '`limit`')
    rejects({ limit: '100' }, '`limit`')
    rejects({ max: Number.NaN }, '`max`')
  })

  it('rejects a store of your own and names without their own key space', () => {
    rejects({ store: new MemoryStore() }, '`store`', 'Remove `store`')
    rejects({ name: 'a:b' }, '`name`', "no ':'")
    rejects({ name: '' }, '`name`')
    rejects({ name: 'x'.repeat(65) }, '`name`')
    rejects('100', 'rateLimit(options)')
  })

  it('rejects a second unnamed limiter, and two limiters with one name, saying how to fix it', () => {
    const kit = testKit({ enabled: false })
    kit.rateLimit({ limit: 100 })
    assert.throws(() => kit.rateLimit({ limit: 5 }), (error: unknown) => {
      assert.ok(error instanceof KitError && error.code === 'ERR_KIT_INVALID_OPTION')
      assert.match(error.message, /`name` is missing, and the default name 'default' is already used/)
      assert.match(error.message, /name: 'login'/)
      return true
    })
    kit.rateLimit({ limit: 5, name: 'login' })
    assert.throws(() => kit.rateLimit({ limit: 10, name: 'login' }), /'login' is already used by another limiter of this kit/)
    // A rejected limiter does not take the name: a fixed one still can.
    assert.throws(() => kit.rateLimit({ name: 'signup', onRedisDown: 'nope' as 'deny' }), KitError)
    kit.rateLimit({ name: 'signup' })
    // Another kit (another app) has its own names.
    const other = testKit({ enabled: false })
    other.rateLimit({ limit: 100 })
    other.rateLimit({ name: 'login' })
    void kit.close()
    void other.close()
  })

  it('accepts a Redis Cluster client (it used to refuse one at start-up; test/integration/cluster.test.ts runs it)', async () => {
    // Never reaches a server: only the start-up check is under test here.
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: () => null })
    cluster.on('error', () => {})
    const kit = testKit({ redis: cluster, connectTimeoutMs: 100 })
    try {
      assert.doesNotThrow(() => kit.rateLimit())
    } finally {
      await kit.close()
      cluster.disconnect()
    }
  })

  it("keeps express-rate-limit's validations, logged through the kit's logger", () => {
    const kit = testKit({ enabled: false })
    kit.rateLimit({ limit: 5, maxx: 3 } as Partial<RateLimitOptions>)
    assert.ok(kit.logger.lines.some((line) => line.startsWith('error [express-rate-limit]') && line.includes('ERR_ERL_UNKNOWN_OPTION')),
      kit.logger.lines.join('\n'))
    void kit.close()
  })
})

describe('kit.rateLimit() with Redis disabled', () => {
  let server: Server | undefined

  afterEach(() => {
    server?.closeAllConnections()
    server?.close()
    server = undefined
  })

  for (const onRedisDown of ['memory', 'allow', 'deny'] as const) {
    it(`counts in memory with the full limit (onRedisDown: '${onRedisDown}')`, async () => {
      const kit = testKit({ enabled: false })
      const { app, errors } = rateLimitedApp(kit, { limit: 3, windowMs: 30_000, onRedisDown })
      let url: string
      ;({ server, url } = await listen(app))
      const first = await hit(url, 'alice')
      assert.equal(first.status, 200)
      assert.deepEqual(draft8(first.headers), { name: '3-in-30sec', r: 2, t: 30, q: 3, w: 30 })
      assert.deepEqual(await hits(url, 'alice', 3), [200, 200, 429])
      assert.equal((await hit(url, 'bob')).status, 200)
      assert.deepEqual(errors, [])
      await kit.close()
    })
  }

  it('supports resetKey() and getKey() on the middleware', async () => {
    const kit = testKit({ enabled: false })
    const { app, limiter } = rateLimitedApp(kit, { limit: 2 })
    let url: string
    ;({ server, url } = await listen(app))
    assert.deepEqual(await hits(url, 'carol', 3), [200, 200, 429])
    const info = await limiter.getKey('carol')
    assert.equal(info?.totalHits, 3)
    assert.ok(info.resetTime instanceof Date && info.resetTime.getTime() > Date.now())
    limiter.resetKey('carol')
    await new Promise((r) => setImmediate(r))
    assert.equal(await limiter.getKey('carol'), undefined)
    assert.deepEqual(await hits(url, 'carol', 2), [200, 200])
    await kit.close()
  })
})
