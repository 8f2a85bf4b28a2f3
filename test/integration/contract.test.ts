/**
 * One contract, two halves: every dual call gives the same answers on Redis and on the memory
 * twin. The same operation sequences run against a kit on a real redis-server and a kit with
 * Redis disabled (memory only); every answer — value, boolean, count, or error code — must match.
 */
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { Kit, KitValue } from '../../lib/index.js'
import { testKit } from '../helpers/kit.js'
import { RedisServer } from '../helpers/redis-server.js'

type ClientOp =
  | ['get' | 'exists' | 'delete', string]
  | ['set', string, KitValue]
  | ['increment', string, number]
  | ['expire', string, number]

const key = fc.constantFrom('a', 'b', 'n', 'x:y')
// Integers stay well inside ±2^53: ioredis parses the integer reply 9007199254740991 (2^53-1) as
// 9007199254740992, so at the very edge the halves differ (README: Key-value client).
const value: fc.Arbitrary<KitValue> = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }), fc.integer({ min: -(2 ** 52), max: 2 ** 52 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 8 }),
  fc.constantFrom('42', 'true', '{}', '"q"', ' 7', '-0', ''), fc.boolean(), fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
)
const clientOp: fc.Arbitrary<ClientOp> = fc.oneof(
  fc.tuple(fc.constantFrom('get' as const, 'exists' as const, 'delete' as const), key),
  fc.tuple(fc.constant('set' as const), key, value),
  fc.tuple(fc.constant('increment' as const), key, fc.integer({ min: -1e9, max: 1e9 })),
  fc.tuple(fc.constant('expire' as const), key, fc.integer({ min: 60, max: 3600 })),
)

/** The answer of one operation: its value, or the code of the error it threw. */
async function answer(kit: Kit, op: ClientOp): Promise<unknown> {
  try {
    switch (op[0]) {
      case 'get': return await kit.client.get(op[1])
      case 'exists': return await kit.client.exists(op[1])
      case 'delete': return await kit.client.delete(op[1])
      case 'set': return await kit.client.set(op[1], op[2])
      case 'increment': return await kit.client.increment(op[1], op[2])
      case 'expire': return await kit.client.expire(op[1], op[2])
    }
  } catch (error) {
    return { error: (error as { code?: string }).code ?? String(error) }
  }
}

describe('contract: Redis and memory halves answer alike', function () {
  this.timeout(60_000)
  let server: RedisServer
  let onRedis: Kit
  let inMemory: Kit

  before(async () => {
    server = await RedisServer.start()
    onRedis = testKit({ url: server.url, keyPrefix: 'contract:' })
    inMemory = testKit({ enabled: false, keyPrefix: 'contract:' })
    await onRedis.ready()
    assert.equal(onRedis.state, 'ready')
  })

  after(async () => {
    await onRedis.close()
    await inMemory.close()
    await server.stop()
  })

  it('kit.client: any sequence of get / set / delete / exists / increment / expire', async () => {
    await fc.assert(fc.asyncProperty(fc.array(clientOp, { maxLength: 25 }), async (ops) => {
      for (const name of ['a', 'b', 'n', 'x:y']) { await onRedis.client.delete(name); await inMemory.client.delete(name) }
      for (const op of ops) {
        const [fromRedis, fromMemory] = [await answer(onRedis, op), await answer(inMemory, op)]
        assert.deepEqual(fromMemory, fromRedis, `${JSON.stringify(op)}: memory answered ${JSON.stringify(fromMemory)}, Redis ${JSON.stringify(fromRedis)}`)
      }
    }), { numRuns: Number(process.env.FC_RUNS ?? 60) })
  })

  it('the session store: set, get, touch, destroy, ids, length, all, clear', async () => {
    const stores = [onRedis.sessionStore({ ttlMs: 60_000 }), inMemory.sessionStore({ ttlMs: 60_000 })]
    const cookie = { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }
    const script: [string, (store: (typeof stores)[number]) => Promise<unknown>][] = [
      ['set one', (s) => s.set('one', { cookie, user: 'u1' })],
      ['set two', (s) => s.set('two', { cookie, user: 'u2' })],
      ['get one', (s) => s.get('one')],
      ['get missing', (s) => s.get('missing')],
      ['touch one', (s) => s.touch('one', { cookie })],
      ['ids', async (s) => (await s.ids()).sort()],
      ['length', (s) => s.length()],
      ['all', async (s) => (await s.all()).map((x) => `${x.id}:${(x as { user?: string }).user}`).sort()],
      ['destroy one', (s) => s.destroy('one')],
      ['get one after destroy', (s) => s.get('one')],
      ['ids after destroy', (s) => s.ids()],
      ['clear', (s) => s.clear()],
      ['length after clear', (s) => s.length()],
    ]
    for (const [what, step] of script) {
      const [fromRedis, fromMemory] = [await step(stores[0]!), await step(stores[1]!)]
      assert.deepEqual(fromMemory, fromRedis, what)
    }
  })

  it('the rate-limit store: increment, decrement, get, resetKey', async () => {
    const stores = [onRedis.rateLimitStore({ name: 'contract' }), inMemory.rateLimitStore({ name: 'contract' })]
    for (const store of stores) store.init({ windowMs: 60_000, limit: 5 } as never)
    // init() sent rate-limit-redis' SCRIPT LOADs on the kit's one connection: a command sent there
    // now is answered after them (the barrier waitForState uses).
    await onRedis.client.exists('contract:scripts-loaded')
    const hits = (info: { totalHits: number } | undefined): number | undefined => info?.totalHits
    const script: [string, (store: (typeof stores)[number]) => Promise<unknown>][] = [
      ['get before any hit', async (s) => hits(await s.get('ip'))],
      ['increment', async (s) => hits(await s.increment('ip'))],
      ['increment again', async (s) => hits(await s.increment('ip'))],
      ['decrement', (s) => s.decrement('ip')],
      ['get', async (s) => hits(await s.get('ip'))],
      ['resetKey', (s) => s.resetKey('ip')],
      ['get after reset', async (s) => hits(await s.get('ip'))],
      ['increment after reset', async (s) => hits(await s.increment('ip'))],
    ]
    for (const [what, step] of script) {
      const [fromRedis, fromMemory] = [await step(stores[0]!), await step(stores[1]!)]
      assert.deepEqual(fromMemory, fromRedis, what)
    }
  })
})
