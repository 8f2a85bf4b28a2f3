/**
 * kit.client has the same semantics on Redis and in memory: every case below runs against a
 * real redis-server and against a kit with Redis disabled.
 */
import assert from 'node:assert/strict'
import type { Kit } from '../../lib/index.js'
import { fakeClock } from '../helpers/clock.js'
import { eventually, internals, SLACK, testKit } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

for (const mode of ['redis', 'memory'] as const) {
  describe(`kit.client on ${mode}`, () => {
    let server: RedisServer | undefined
    let kit: Kit

    before(async () => {
      if (mode === 'redis') server = await RedisServer.start()
      kit = mode === 'redis' ? testKit({ url: server!.url }) : testKit({ enabled: false })
      await kit.ready()
      assert.equal(kit.state, mode === 'redis' ? 'ready' : 'disabled')
    })

    after(async () => {
      await kit.close()
      await server?.stop()
    })

    /**
     * For a test that waits for a key's TTL: call before the key is written, then `passed(ttlMs,
     * key, gone)` resolves once the key is gone. In memory the TTL is the kit's own (the twin's, on
     * performance.now()): a fake clock stops short of it, checks the key is still there, then passes
     * it. On Redis, Redis expires the key on its own clock: poll, allowing at most SLACK past the TTL.
     */
    function ttlClock(): { passed(ttlMs: number, key: string, gone: () => Promise<boolean>): Promise<void> } {
      if (mode === 'redis') return { passed: (ttlMs, key, gone) => eventually(gone, ttlMs + SLACK, `${key} expired`) }
      const clock = fakeClock(['Date', 'performance'], { advance: false })
      return {
        async passed(ttlMs, key, gone) {
          await clock.tickAsync(ttlMs - 1)
          assert.equal(await kit.client.exists(key), true, `${key} is kept until its TTL`)
          await clock.tickAsync(2)
          assert.ok(await gone(), `${key} expired`)
        },
      }
    }

    it('round-trips strings, numbers, booleans, objects and arrays with their types', async () => {
      const values = { s: 'my_value', n: 42, f: 1.5, numeric: '42', t: true, o: { a: [1, { b: 'c' }] }, a: ['x', 2], nul: null }
      for (const [key, value] of Object.entries(values)) {
        assert.equal(await kit.client.set(`rt:${key}`, value), true)
        assert.deepEqual(await kit.client.get(`rt:${key}`), value, key)
      }
    })

    it('returns null for a missing key and reports existence', async () => {
      assert.equal(await kit.client.get('missing'), null)
      assert.equal(await kit.client.exists('missing'), false)
      await kit.client.set('present', 'yes')
      assert.equal(await kit.client.exists('present'), true)
    })

    it('deletes keys and says whether one existed', async () => {
      await kit.client.set('doomed', 1)
      assert.equal(await kit.client.delete('doomed'), true)
      assert.equal(await kit.client.get('doomed'), null)
      assert.equal(await kit.client.delete('doomed'), false)
    })

    it('increments from 0 on a missing key, by 1 by default and by any integer', async () => {
      assert.equal(await kit.client.increment('visitor_count'), 1)
      assert.equal(await kit.client.increment('visitor_count', 1), 2)
      assert.equal(await kit.client.increment('visitor_count', 10), 12)
      assert.equal(await kit.client.increment('visitor_count', -2), 10)
      assert.equal(await kit.client.get('visitor_count'), 10)
    })

    it('increments a number stored with set()', async () => {
      await kit.client.set('counter', 5)
      assert.equal(await kit.client.increment('counter'), 6)
    })

    it('fails to increment a non-integer the way Redis does', async () => {
      await kit.client.set('text', 'abc')
      await kit.client.set('float', 1.5)
      await kit.client.set('numeric-string', '7')
      for (const key of ['text', 'float', 'numeric-string']) {
        await assert.rejects(kit.client.increment(key), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'ERR_KIT_NOT_INTEGER')
          assert.match(error.message, /not an integer/)
          return true
        }, key)
      }
      assert.equal(await kit.client.get('text'), 'abc', 'a failed increment changes nothing')
    })

    it('expires keys after the set() TTL', async () => {
      const ttl = ttlClock()
      await kit.client.set('brief', 'v', 0.15)
      assert.equal(await kit.client.get('brief'), 'v')
      await ttl.passed(150, 'brief', async () => (await kit.client.get('brief')) === null)
      assert.equal(await kit.client.get('brief'), null)
      assert.equal(await kit.client.exists('brief'), false)
    })

    it('uses a one-hour TTL by default', async () => {
      await kit.client.set('hour', 'v')
      if (mode === 'redis') {
        const direct = testClient(server!)
        const ttl = await direct.pttl('hour')
        direct.disconnect()
        assert.ok(ttl > 3_590_000 && ttl <= 3_600_000, `pttl ${ttl}`)
      } else {
        const ttl = internals(kit).memory('client').remainingTtl('hour') ?? 0
        assert.ok(ttl > 3_590_000 && ttl <= 3_600_000, `ttl ${ttl}`)
      }
    })

    it('expire() shortens a TTL and reports whether the key exists', async () => {
      const ttl = ttlClock()
      await kit.client.set('soon', 'v', 60)
      assert.equal(await kit.client.expire('soon', 0.15), true)
      assert.equal(await kit.client.expire('never-set', 10), false)
      await ttl.passed(150, 'soon', async () => (await kit.client.get('soon')) === null)
      assert.equal(await kit.client.get('soon'), null)
    })

    it('keeps an increment\'s TTL, as INCR does', async () => {
      const ttl = ttlClock()
      await kit.client.set('ttl-counter', 1, 0.2)
      assert.equal(await kit.client.increment('ttl-counter'), 2)
      await ttl.passed(200, 'ttl-counter', async () => (await kit.client.get('ttl-counter')) === null)
      assert.equal(await kit.client.get('ttl-counter'), null)
    })

    it('rejects bad arguments with ERR_KIT_INVALID_ARGUMENT', async () => {
      await assert.rejects(kit.client.set('', 'v'), /key must be a non-empty string/)
      await assert.rejects(kit.client.set('k', 'v', -1), /ttl must be a positive number/)
      await assert.rejects(kit.client.increment('k', 1.5), /amount must be an integer/)
      await assert.rejects(kit.client.expire('k', 0), /seconds must be a positive number/)
    })
  })
}

describe('kit.client keyPrefix', () => {
  it('puts the kit keyPrefix before every key', async () => {
    const server = await RedisServer.start()
    const kit = testKit({ url: server.url, keyPrefix: 'app1:' })
    try {
      await kit.ready()
      await kit.client.set('k', 'v')
      const direct = testClient(server)
      assert.equal(await direct.get('app1:k'), 'v')
      assert.equal(await direct.get('k'), null)
      direct.disconnect()
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})
