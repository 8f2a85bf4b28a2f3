/**
 * Bad input at the call site fails the same way whether the kit is on Redis, in an outage or
 * disabled: a KitError naming the problem, thrown before anything is written anywhere. (Memory
 * used to accept what Redis refuses, so an outage acknowledged writes that were then lost.)
 */
import assert from 'node:assert/strict'
import { KitError, type Kit, type KitValue } from '../../lib/index.js'
import { internals, testKit } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'

function circular(): KitValue {
  const value: Record<string, unknown> = { a: 1 }
  value.self = value
  return value as KitValue
}

const BAD_CALLS: [string, (kit: Kit) => Promise<unknown>, RegExp][] = [
  ['a TTL beyond what Redis can expire', (kit) => kit.client.set('k', 'v', 1e16), /ttl is 10000000000000000 seconds, beyond what Redis can expire/],
  ['an expire beyond what Redis can expire', (kit) => kit.client.expire('k', 1e20), /seconds is 100000000000000000000 seconds, beyond what Redis can expire/],
  ['a zero TTL', (kit) => kit.client.set('k', 'v', 0), /ttl must be a positive number/],
  ['a value too large for the memory twin', (kit) => kit.client.set('k', 'x'.repeat(600_000)), /too large to keep through an outage/],
  ['a circular object', (kit) => kit.client.set('k', circular()), /cannot encode the value as JSON/],
  ['a BigInt inside an object', (kit) => kit.client.set('k', { n: 1n } as unknown as KitValue), /cannot encode the value as JSON/],
  ['a toJSON that throws', (kit) => kit.client.set('k', { toJSON() { throw new Error('nope') } } as unknown as KitValue), /cannot encode the value as JSON \(nope\)/],
  ['an empty key', (kit) => kit.client.get(''), /key must be a non-empty string/],
  ['a fractional increment', (kit) => kit.client.increment('k', 1.5), /amount must be an integer/],
]

for (const mode of ['ready', 'degraded', 'disabled'] as const) {
  describe(`bad input, kit ${mode}`, () => {
    let server: RedisServer | undefined
    let kit: Kit

    before(async () => {
      const memory = { maxBytes: 1024 * 1024 }
      if (mode === 'ready') {
        server = await RedisServer.start()
        kit = testKit({ url: server.url, memory })
      } else if (mode === 'degraded') {
        kit = testKit({ url: `redis://127.0.0.1:${await freePort()}`, connectTimeoutMs: 100, memory })
      } else {
        kit = testKit({ enabled: false, memory })
      }
      await kit.ready()
      assert.equal(kit.state, mode)
    })

    after(async () => {
      await kit.close()
      await server?.stop()
    })

    for (const [what, call, message] of BAD_CALLS) {
      it(`${what}: ERR_KIT_INVALID_ARGUMENT, nothing written`, async () => {
        await assert.rejects(call(kit), (error: unknown) => {
          assert.ok(error instanceof KitError, String(error))
          assert.equal(error.code, 'ERR_KIT_INVALID_ARGUMENT')
          assert.match(error.message, message)
          return true
        })
        assert.equal(await kit.client.exists('k'), false)
        assert.equal(internals(kit).pending, 0, 'nothing journaled')
      })
    }
  })
}

describe('Redis answers about the data', () => {
  it('WRONGTYPE becomes ERR_KIT_WRONG_TYPE with a clear message, and the kit stays on Redis', async () => {
    const server = await RedisServer.start()
    const kit = testKit({ url: server.url })
    const direct = testClient(server)
    try {
      await kit.ready()
      await direct.hset('a-hash', 'field', 'value')
      for (const call of [() => kit.client.get('a-hash'), () => kit.client.increment('a-hash')]) {
        await assert.rejects(call(), (error: unknown) => {
          assert.ok(error instanceof KitError)
          assert.equal(error.code, 'ERR_KIT_WRONG_TYPE')
          assert.match(error.message, /holds a different Redis type.*WRONGTYPE/)
          return true
        })
      }
      assert.equal(kit.state, 'ready')
    } finally {
      direct.disconnect()
      await kit.close()
      await server.stop()
    }
  })
})
