/** A ready ioredis client passed as `redis`: used as is, checked once, bounded anyway, never closed by the kit. */
import assert from 'node:assert/strict'
import { SLACK, testKit, timed, waitForState } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'

describe('a user-supplied ioredis client', () => {
  let server: RedisServer

  beforeEach(async () => { server = await RedisServer.start() })
  afterEach(async () => { server.resume(); await server.stop() })

  it('warns once about settings that would hang requests, yet every call stays bounded', async () => {
    const redis = testClient(server) // ioredis defaults
    const kit = testKit({ redis, commandTimeoutMs: 300 })
    try {
      await kit.ready()
      assert.equal(kit.state, 'ready')
      const warnings = kit.logger.lines.filter((l) => l.includes('ERR_KIT_CLIENT_SETTINGS'))
      assert.equal(warnings.length, 1)
      assert.match(warnings[0] ?? '', /enableOfflineQueue is on.*autoResendUnfulfilledCommands is on/)
      await kit.client.set('k', 'v')
      server.pause()
      const { value, ms } = await timed(() => kit.client.get('k'))
      assert.equal(value, 'v')
      assert.ok(ms < 300 + SLACK, `bounded by the kit's own timer (${ms.toFixed(0)} ms)`)
      assert.equal(kit.state, 'degraded')
      const ready = waitForState(kit, 'ready')
      server.resume()
      await ready
    } finally {
      await kit.close()
    }
    assert.equal(redis.status, 'ready', 'the kit does not close a client it did not create')
    assert.equal(await redis.ping(), 'PONG')
    redis.disconnect()
  })

  it('does not warn about a client built with fail-fast settings', async () => {
    const redis = testClient(server, {
      enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 300, autoResendUnfulfilledCommands: false,
    })
    const kit = testKit({ redis })
    try {
      await kit.ready()
      assert.equal(kit.state, 'ready')
      assert.deepEqual(kit.logger.lines.filter((l) => l.includes('ERR_KIT_CLIENT_SETTINGS')), [])
      assert.equal(await kit.client.increment('n', 2), 2)
      // The logs name the server this client is on, not REDIS_URL or the default URL.
      assert.match(kit.logger.lines.join('\n'), new RegExp(`connected at redis://127\\.0\\.0\\.1:${server.port}/0`))
      assert.doesNotMatch(kit.logger.lines.join('\n'), /localhost:6379/)
    } finally {
      await kit.close()
      redis.disconnect()
    }
  })
})
