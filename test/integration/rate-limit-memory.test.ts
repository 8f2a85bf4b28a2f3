/**
 * Issue 13, item 14: counting in memory (Redis disabled, or during an outage with onRedisDown:
 * 'memory'), least-recently-used eviction reset a brute-force counter: 10,001 requests for other
 * keys, then five more password guesses for `admin`. Clients that used up their limit now live in
 * a tier eviction spares, and memory stays bounded.
 */
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import type { RateLimitOptions } from '../../lib/index.js'
import { internals, testKit, waitForState } from '../helpers/kit.js'
import { hit, hits, listen, rateLimitedApp } from '../helpers/rate-limit-app.js'
import { RedisServer } from '../helpers/redis-server.js'

const WINDOW_MS = 15 * 60_000
const LOGIN: Partial<RateLimitOptions> = { name: 'login', windowMs: WINDOW_MS, limit: 5 }

/** One request for each of `count` new clients, `parallel` at a time; resolves their statuses. */
async function flood(url: string, count: number, parallel = 16): Promise<number[]> {
  const statuses: number[] = []
  let next = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) statuses.push((await hit(url, `visitor-${next++}`)).status)
  }))
  return statuses
}

describe('rate limit memory: eviction never frees a limited client before the others (issue 13, item 14)', function () {
  this.timeout(60_000)
  const kits: ReturnType<typeof testKit>[] = []
  const servers: Server[] = []
  let redis: RedisServer | undefined

  async function start(options: Partial<RateLimitOptions>, kitOptions: Parameters<typeof testKit>[0], flavour: 'express5' | 'express4' = 'express5'): Promise<{ url: string; kit: ReturnType<typeof testKit> }> {
    const kit = testKit(kitOptions)
    kits.push(kit)
    const { app, errors } = rateLimitedApp(kit, { ...LOGIN, ...options }, flavour)
    const { server, url } = await listen(app)
    servers.push(server)
    await kit.ready()
    assert.deepEqual(errors, [])
    return { url, kit }
  }

  afterEach(async () => {
    for (const server of servers.splice(0)) { server.closeAllConnections(); server.close() }
    await Promise.all(kits.splice(0).map((kit) => kit.close()))
    await redis?.stop()
    redis = undefined
  })

  it('memory mode, default bounds: 10,001 requests for other keys, then five guesses for admin are still limited', async () => {
    const { url, kit } = await start({}, { enabled: false })
    assert.deepEqual(await hits(url, 'admin', 6), [200, 200, 200, 200, 200, 429])
    const visitors = await flood(url, 10_001)
    assert.ok(visitors.every((status) => status === 200))
    assert.deepEqual(await hits(url, 'admin', 5), [429, 429, 429, 429, 429])
    // Still bounded: the first tier evicted the oldest visitors, not admin.
    const memory = internals(kit).memory('rateLimit')
    assert.ok(memory.size <= 10_000, `first tier holds ${memory.size}`)
    assert.equal(internals(kit).memory('rateLimit:used-up').size, 1)
  })

  it('memory mode: a client that used its whole allowance (not yet refused) is kept too', async () => {
    const { url } = await start({}, { enabled: false, memory: { maxEntries: 200 } })
    assert.deepEqual(await hits(url, 'admin', 5), [200, 200, 200, 200, 200])
    await flood(url, 201)
    assert.deepEqual(await hits(url, 'admin', 2), [429, 429])
  })

  it('memory mode: with a limit function too (the middleware reports used-up clients)', async () => {
    const { url } = await start({ limit: () => 5 }, { enabled: false, memory: { maxEntries: 200 } })
    assert.deepEqual(await hits(url, 'admin', 6), [200, 200, 200, 200, 200, 429])
    await flood(url, 201)
    assert.deepEqual(await hits(url, 'admin', 5), [429, 429, 429, 429, 429])
  })

  it('memory stays bounded: more used-up clients than maxEntries evict the oldest of them, not the visitors\' bound', async () => {
    const { url, kit } = await start({ limit: 1 }, { enabled: false, memory: { maxEntries: 50 } })
    await flood(url, 120) // limit 1: each visitor used its allowance
    assert.ok(internals(kit).memory('rateLimit:used-up').size <= 50)
    assert.ok(internals(kit).memory('rateLimit').size <= 50)
  })

  it('during an outage (kill -9, onRedisDown: \'memory\'): the flood does not reset admin\'s count either', async () => {
    redis = await RedisServer.start()
    const { url, kit } = await start({ onRedisDown: 'memory' }, { url: redis.url, commandTimeoutMs: 300, memory: { maxEntries: 200 } })
    assert.equal(kit.state, 'ready')
    await redis.kill()
    await waitForState(kit, 'degraded')
    assert.deepEqual(await hits(url, 'admin', 6), [200, 200, 200, 200, 200, 429])
    await flood(url, 201)
    assert.deepEqual(await hits(url, 'admin', 5), [429, 429, 429, 429, 429])
  })

  it('works on Express 4 (smoke test)', async () => {
    const { url } = await start({}, { enabled: false, memory: { maxEntries: 200 } }, 'express4')
    assert.deepEqual(await hits(url, 'admin', 6), [200, 200, 200, 200, 200, 429])
    await flood(url, 201)
    assert.deepEqual(await hits(url, 'admin', 5), [429, 429, 429, 429, 429])
  })
})
