/**
 * kit.rateLimit() against a real redis-server: the limit and its headers, one round trip per
 * request, and what a user sees when Redis is killed, hung, restarted, flushed or never there.
 */
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
import express from 'express'
import { rateLimit } from 'express-rate-limit'
import type { Redis } from 'ioredis'
import type { RateLimitOptions } from '../../lib/index.js'
import { eventually, SLACK, testKit, waitForState } from '../helpers/kit.js'
import { byClientHeader, draft8, hit, hits, listen, rateLimitedApp, tally, type RateLimitedApp } from '../helpers/rate-limit-app.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'

const TIMEOUT = 300

function direct(server: RedisServer): Redis {
  return testClient(server, { maxRetriesPerRequest: 1 })
}

describe('kit.rateLimit() on a real Redis', function () {
  this.timeout(30_000)
  let redis: RedisServer
  let inspect: Redis
  let kit: ReturnType<typeof testKit> | undefined
  let app: RateLimitedApp
  let server: Server | undefined
  let url: string

  async function start(options: Partial<RateLimitOptions>, kitOptions: Parameters<typeof testKit>[0] = {}): Promise<void> {
    kit = testKit({ url: redis.url, commandTimeoutMs: TIMEOUT, ...kitOptions })
    app = rateLimitedApp(kit, options)
    ;({ server, url } = await listen(app.app))
    await kit.ready()
  }

  before(async () => {
    redis = await RedisServer.start()
    inspect = direct(redis)
  })

  afterEach(async () => {
    // express-rate-limit's validations log through the kit's logger: none may have fired.
    const complaints = kit?.logger.lines.filter((line) => /express-rate-limit|rate limiter|ERR_ERL/.test(line)) ?? []
    redis.resume()
    server?.closeAllConnections()
    server?.close()
    server = undefined
    await kit?.close()
    kit = undefined
    if (!redis.pid) await redis.start()
    await inspect.flushall().catch(() => {})
    assert.deepEqual(complaints, [])
  })

  after(async () => {
    inspect.disconnect()
    await redis.stop()
  })

  it('enforces the limit in Redis with draft-8 headers, Retry-After and no legacy headers', async () => {
    await start({ windowMs: 60_000, limit: 3, name: 'login' }, { keyPrefix: 'app:' })
    assert.equal(kit!.state, 'ready')
    const first = await hit(url, 'alice')
    assert.equal(first.status, 200)
    assert.deepEqual(draft8(first.headers), { name: '3-in-1min', r: 2, t: 60, q: 3, w: 60 })
    assert.equal(first.headers.get('x-ratelimit-limit'), null)
    assert.equal(first.headers.get('retry-after'), null)
    assert.deepEqual(await hits(url, 'alice', 2), [200, 200])
    const limited = await hit(url, 'alice')
    assert.equal(limited.status, 429)
    assert.equal(draft8(limited.headers)?.r, 0)
    const retryAfter = Number(limited.headers.get('retry-after'))
    assert.ok(retryAfter > 55 && retryAfter <= 60, `Retry-After ${retryAfter}`)
    // Counted in Redis under the kit prefix and the limiter's name, with the window as expiry.
    assert.equal(await inspect.get('app:rate:login:alice'), '4')
    const pttl = await inspect.pttl('app:rate:login:alice')
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`)
    // Another client has its own count.
    assert.equal((await hit(url, 'bob')).status, 200)
    assert.deepEqual(app.errors, [])
  })

  it("keys by IP through express-rate-limit's own key generator when none is given", async () => {
    await start({ limit: 2, keyGenerator: undefined })
    assert.deepEqual(await hits(url, 'ignored', 3), [200, 200, 429])
    // IPv4-mapped IPv6 (::ffff:127.0.0.1) is keyed as the IPv4 address, as express-rate-limit does.
    assert.equal(await inspect.get('rate:default:127.0.0.1'), '3')
    assert.ok(!kit!.logger.lines.some((line) => line.includes('ERR_ERL')), kit!.logger.lines.join('\n'))
  })

  it("keys an IPv6 client by its /56 network, as express-rate-limit does", async () => {
    kit = testKit({ url: redis.url, commandTimeoutMs: TIMEOUT })
    app = rateLimitedApp(kit, { limit: 2, keyGenerator: undefined })
    ;({ server, url } = await listen(app.app, '::1'))
    await kit.ready()
    assert.deepEqual(await hits(url, 'ignored', 3), [200, 200, 429])
    assert.deepEqual(await inspect.keys('rate:*'), ['rate:default:::/56'])
  })

  it('makes exactly one Redis round trip per request', async () => {
    await start({ limit: 1000 })
    await hit(url, 'warm-up') // the first request may wait for the scripts loaded on connect
    // MONITOR shows every command a client sent; commands run inside a script come from 'lua'.
    const monitored = direct(redis)
    const monitor = await monitored.monitor()
    const sent: string[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua') sent.push(String(args[0]).toLowerCase())
    })
    await hits(url, 'carol', 25)
    await inspect.set('monitor-marker', '1') // every earlier command is seen once this one is
    await eventually(() => sent.includes('set'), 5000, 'the marker seen by MONITOR')
    monitor.disconnect()
    monitored.disconnect()
    assert.deepEqual(tally(sent.map((c) => (c === 'evalsha' ? 1 : c === 'set' ? 2 : 0))), { 1: 25, 2: 1 }, sent.join(' '))
  })

  it('survives SCRIPT FLUSH: the script is reloaded, no 500 and no double count', async () => {
    await start({ limit: 100 })
    assert.deepEqual(tally(await hits(url, 'dave', 5)), { 200: 5 })
    await inspect.script('FLUSH')
    assert.deepEqual(tally(await hits(url, 'dave', 5)), { 200: 5 })
    assert.equal(await inspect.get('rate:default:dave'), '10')
    assert.equal(kit!.state, 'ready')
    assert.deepEqual(app.errors, [])
  })

  it('survives a Redis restart: no 500, hits made while it was down are kept, then Redis counts again', async () => {
    await start({ limit: 100 })
    assert.deepEqual(await hits(url, 'erin', 3), [200, 200, 200])
    await redis.kill()
    await waitForState(kit!, 'degraded')
    assert.deepEqual(tally(await hits(url, 'erin', 4)), { 200: 4 })
    await redis.start()
    await waitForState(kit!, 'ready')
    // The restarted Redis is empty: the 4 hits made in memory were written back, with a window.
    assert.equal(await inspect.get('rate:default:erin'), '4')
    assert.ok((await inspect.pttl('rate:default:erin')) > 50_000)
    // The scripts were loaded again on reconnect: requests count in Redis, none fails.
    assert.deepEqual(tally(await hits(url, 'erin', 6)), { 200: 6 })
    assert.equal(await inspect.get('rate:default:erin'), '10')
    assert.deepEqual(app.errors, [])
  })

  it('kill -9 mid-traffic: zero failed requests, and the limit is still enforced from memory', async () => {
    await start({ limit: 40 })
    const statuses: number[] = []
    let killed: Promise<void> | undefined
    const worker = async (): Promise<void> => {
      while (statuses.length < 160) {
        const { status } = await hit(url, 'frank')
        statuses.push(status)
        if (statuses.length === 15) killed = redis.kill()
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()])
    await killed
    assert.equal(kit!.state, 'degraded')
    const counts = tally(statuses)
    assert.deepEqual(Object.keys(counts).sort(), ['200', '429'], JSON.stringify(counts))
    // Redis allowed the first requests, memory then allowed at most 40 more, and no more after that.
    assert.ok((counts[200] ?? 0) <= 40 + 15 + 4, JSON.stringify(counts))
    assert.deepEqual(statuses.slice(-20), new Array(20).fill(429))
    assert.deepEqual(await hits(url, 'frank', 3), [429, 429, 429])
    assert.deepEqual(app.errors, [])
  })

  it('SIGSTOP: answers within the command timeout, then counts exactly once (the timed-out hit is not replayed)', async () => {
    await start({ limit: 100 })
    assert.deepEqual(tally(await hits(url, 'grace', 10)), { 200: 10 })
    redis.pause()
    const first = await hit(url, 'grace')
    assert.equal(first.status, 200)
    assert.ok(first.ms < TIMEOUT + SLACK, `the request during the hang took ${Math.round(first.ms)} ms`)
    assert.equal(kit!.state, 'degraded')
    const during = await Promise.all(Array.from({ length: 69 }, () => hit(url, 'grace')))
    assert.deepEqual(tally(during.map((h) => h.status)), { 200: 69 })
    const slowest = Math.max(...during.map((h) => h.ms))
    assert.ok(slowest < TIMEOUT + SLACK, `slowest request during the hang took ${Math.round(slowest)} ms`)
    redis.resume()
    await waitForState(kit!, 'ready')
    // 10 before + the hit that timed out (it ran when Redis resumed) + 69 replayed = 80, not 81.
    assert.equal(await inspect.get('rate:default:grace'), '80')
    assert.deepEqual(tally(await hits(url, 'grace', 20)), { 200: 20 })
    assert.equal((await hit(url, 'grace')).status, 429)
    assert.deepEqual(app.errors, [])
  })

  it('recovery: 80 of 100 used during an outage leaves 20 after it', async () => {
    await start({ limit: 100, windowMs: 120_000 })
    await redis.kill()
    await waitForState(kit!, 'degraded')
    assert.deepEqual(tally(await hits(url, 'heidi', 80)), { 200: 80 })
    await redis.start()
    await waitForState(kit!, 'ready')
    assert.equal(await inspect.get('rate:default:heidi'), '80')
    const pttl = await inspect.pttl('rate:default:heidi')
    assert.ok(pttl > 100_000 && pttl <= 120_000, `PTTL ${pttl}`)
    const after = await hits(url, 'heidi', 21)
    assert.deepEqual(tally(after), { 200: 20, 429: 1 })
    assert.equal(after[20], 429)
  })

  it('resetKey() during an outage reaches Redis: the old count is deleted, the hits after it are kept', async () => {
    await start({ limit: 3 })
    assert.deepEqual(await hits(url, 'ken', 4), [200, 200, 200, 429])
    // A hang keeps Redis' data (a restart would lose it and prove nothing).
    redis.pause()
    // Times out (in doubt: it runs when Redis resumes) and is counted by memory, which starts at 0.
    assert.equal((await hit(url, 'ken')).status, 200)
    assert.equal(kit!.state, 'degraded')
    app.limiter.resetKey('ken')
    assert.deepEqual(await hits(url, 'ken', 2), [200, 200])
    redis.resume()
    await waitForState(kit!, 'ready')
    assert.equal(await inspect.get('rate:default:ken'), '2')
    assert.deepEqual(await hits(url, 'ken', 2), [200, 429])
  })

  it('remembers at most journal.maxEntries clients per outage, and says so once', async () => {
    await start({ limit: 10 }, { journal: { maxEntries: 2 } })
    await redis.kill()
    await waitForState(kit!, 'degraded')
    for (const client of ['la', 'lb', 'lc', 'ld']) assert.equal((await hit(url, client)).status, 200)
    await redis.start()
    await waitForState(kit!, 'ready')
    assert.deepEqual(await inspect.mget('rate:default:la', 'rate:default:lb', 'rate:default:lc', 'rate:default:ld'), ['1', '1', null, null])
    const warnings = kit!.logger.lines.filter((line) => line.includes('ERR_KIT_JOURNAL_FULL'))
    assert.equal(warnings.length, 1, kit!.logger.lines.join('\n'))
    kit!.logger.lines.length = 0
  })

  describe('onRedisDown', () => {
    async function outage(options: Partial<RateLimitOptions>): Promise<void> {
      await start(options)
      await redis.kill()
      await waitForState(kit!, 'degraded')
    }

    it("'memory' with instances: 2 allows ceil(limit / 2) per instance, and says so in the headers", async () => {
      await outage({ limit: 5, instances: 2 })
      const results = await Promise.all([hit(url, 'ivan'), hit(url, 'ivan'), hit(url, 'ivan')])
      assert.deepEqual(results.map((h) => h.status), [200, 200, 200])
      assert.equal(draft8(results[0].headers)?.q, 3)
      const limited = await hit(url, 'ivan')
      assert.equal(limited.status, 429)
      assert.deepEqual(draft8(limited.headers)?.r, 0)
      // Back on Redis the full limit applies again (the 4 memory hits were written back).
      await redis.start()
      await waitForState(kit!, 'ready')
      assert.equal(await inspect.get('rate:default:ivan'), '4')
      const back = await hit(url, 'ivan')
      assert.equal(back.status, 200)
      assert.deepEqual(draft8(back.headers)?.q, 5)
      assert.equal((await hit(url, 'ivan')).status, 429)
    })

    it("'allow' lets every request through while Redis is down, and nothing is written back", async () => {
      await outage({ limit: 2, onRedisDown: 'allow' })
      assert.deepEqual(tally(await hits(url, 'judy', 10)), { 200: 10 })
      await redis.start()
      await waitForState(kit!, 'ready')
      assert.equal(await inspect.get('rate:default:judy'), null)
      assert.deepEqual(await hits(url, 'judy', 3), [200, 200, 429])
    })

    it("'deny' answers 429 with Retry-After: 1 while Redis is down, and counts in Redis again after", async () => {
      await outage({ limit: 2, onRedisDown: 'deny', message: 'Slow down' })
      const denied = await hit(url, 'mallory')
      assert.equal(denied.status, 429)
      assert.equal(denied.headers.get('retry-after'), '1')
      assert.equal(draft8(denied.headers)?.r, 0)
      assert.deepEqual(tally(await hits(url, 'mallory', 5)), { 429: 5 })
      await redis.start()
      await waitForState(kit!, 'ready')
      assert.deepEqual(await hits(url, 'mallory', 3), [200, 200, 429])
      assert.deepEqual(app.errors, [])
    })
  })

  it('never reachable at start: memory answers at once, and its hits reach Redis when it appears', async () => {
    const port = await freePort()
    kit = testKit({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT, connectTimeoutMs: 1000, maxRetryDelayMs: 200 })
    app = rateLimitedApp(kit, { limit: 3 })
    ;({ server, url } = await listen(app.app))
    const early = await hit(url, 'niaj')
    assert.equal(early.status, 200)
    assert.ok(early.ms < TIMEOUT + SLACK, `took ${Math.round(early.ms)} ms`)
    assert.notEqual(kit.state, 'ready')
    assert.deepEqual(await hits(url, 'niaj', 3), [200, 200, 429])
    await kit.ready()
    const late = await RedisServer.start({ port })
    try {
      await waitForState(kit, 'ready')
      const lateInspect = direct(late)
      try {
        assert.equal(await lateInspect.get('rate:default:niaj'), '4')
      } finally {
        lateInspect.disconnect()
      }
      assert.equal((await hit(url, 'niaj')).status, 429)
      assert.deepEqual(app.errors, [])
    } finally {
      await kit.close()
      await late.stop()
    }
  })

  it('FailoverRateLimitStore works with express-rate-limit directly, created before Redis is ready', async () => {
    kit = testKit({ url: redis.url, commandTimeoutMs: TIMEOUT })
    const store = kit.rateLimitStore({ name: 'direct', onRedisDown: 'memory' })
    const direct = express()
    direct.use(rateLimit({ store, limit: 2, keyGenerator: byClientHeader, standardHeaders: 'draft-8', legacyHeaders: false }))
    direct.get('/', (_req, res) => { res.send('ok') })
    assert.equal(kit.state, 'connecting')
    ;({ server, url } = await listen(direct))
    await kit.ready()
    assert.deepEqual(await hits(url, 'peggy', 3), [200, 200, 429])
    assert.equal(await inspect.get('rate:direct:peggy'), '3')
    // After a restart the scripts are loaded again.
    await redis.kill()
    await waitForState(kit, 'degraded')
    await redis.start()
    await waitForState(kit, 'ready')
    assert.deepEqual(await hits(url, 'peggy', 3), [200, 200, 429])
    assert.equal(await inspect.get('rate:direct:peggy'), '3')
  })

  it('a limiter whose script load failed (Redis hung) counts in Redis again once it is back', async () => {
    kit = testKit({ url: redis.url, commandTimeoutMs: TIMEOUT })
    await kit.ready()
    redis.pause()
    // Created while the kit still thinks Redis is ready: rate-limit-redis' SCRIPT LOAD times out.
    app = rateLimitedApp(kit, { limit: 5, name: 'late' })
    ;({ server, url } = await listen(app.app))
    assert.equal((await hit(url, 'quinn')).status, 200)
    assert.equal(kit.state, 'degraded')
    redis.resume()
    await waitForState(kit, 'ready')
    // A store that kept the failed load would fail every call and never count in Redis again.
    assert.deepEqual(await hits(url, 'quinn', 2), [200, 200])
    assert.equal(kit.state, 'ready')
    assert.equal(await inspect.get('rate:late:quinn'), '3')
    assert.deepEqual(app.errors, [])
  })

  it('works on Express 4', async () => {
    kit = testKit({ url: redis.url, commandTimeoutMs: TIMEOUT })
    app = rateLimitedApp(kit, { limit: 2 }, 'express4')
    ;({ server, url } = await listen(app.app))
    await kit.ready()
    const first = await hit(url, 'olivia')
    assert.equal(first.status, 200)
    assert.deepEqual(draft8(first.headers), { name: '2-in-1min', r: 1, t: 60, q: 2, w: 60 })
    assert.deepEqual(await hits(url, 'olivia', 2), [200, 429])
    assert.equal(await inspect.get('rate:default:olivia'), '3')
  })
})
