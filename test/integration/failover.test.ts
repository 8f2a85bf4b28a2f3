/**
 * The backbone's promise, against a real redis-server that is killed, hung, restarted, never there
 * or guarded by a password: no call fails, none waits beyond the command timeout, and writes made
 * during the outage reach Redis once it is back.
 */
import assert from 'node:assert/strict'
import express from 'express'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { internals, eventually, SLACK, testKit, timed, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { freePort, RedisServer } from '../helpers/redis-server.js'

const TIMEOUT = 300
/** The kit's default connectTimeoutMs, within which ready() settles. */
const CONNECT_TIMEOUT = 2000
/** The kit's default maxRetryDelayMs: the longest pause between reconnection probes. */
const MAX_RETRY_DELAY = 500

function healthApp(kit: Kit): express.Express {
  const app = express()
  app.use('/health', kit.healthRouter({ details: true })) // these tests read the server's name and the errors
  return app
}

function direct(server: RedisServer): Redis {
  return testClient(server)
}

/** Counts the reconnection attempts of the kit's own client (ioredis emits 'reconnecting' before each). */
function reconnections(kit: Kit): () => number {
  let count = 0
  internals(kit).redis?.on('reconnecting', () => { count++ })
  return () => count
}

/** Redis's own count of commands it refused for lack of memory (INFO errorstats). */
async function refusedForMemory(redis: Redis): Promise<number> {
  return Number(/errorstat_OOM:count=(\d+)/.exec(await redis.info('errorstats'))?.[1] ?? 0)
}

/** Runs client calls in a loop until stopped; records failures and the slowest call. */
function traffic(kit: Kit) {
  let running = true
  let calls = 0
  let slowest = 0
  const failures: unknown[] = []
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const started = performance.now()
      try {
        await kit.client.increment('traffic')
        await kit.client.set(`traffic:${i % 50}`, { i })
        await kit.client.get(`traffic:${(i + 7) % 50}`)
      } catch (error) {
        failures.push(error)
      }
      slowest = Math.max(slowest, performance.now() - started)
      calls++
      await new Promise((r) => setImmediate(r))
    }
  })()
  return {
    calls: () => calls,
    async stop() { running = false; await loop; return { calls, slowest, failures } },
  }
}

describe('failover: Redis killed, hung, restarted', function () {
  let server: RedisServer
  let kit: Kit & { logger: RecordingLogger }

  beforeEach(async () => {
    server = await RedisServer.start()
    kit = testKit({ url: server.url, commandTimeoutMs: TIMEOUT })
    await kit.ready()
    assert.equal(kit.state, 'ready')
  })

  afterEach(async () => {
    server.resume()
    await kit.close()
    await server.stop()
  })

  it('killed mid-traffic: no call fails, the kit degrades, and comes back by itself after a restart', async () => {
    const load = traffic(kit)
    await eventually(() => load.calls() >= 20, 5000, 'traffic on Redis')
    const attempts = reconnections(kit)
    const degraded = waitForState(kit, 'degraded')
    await server.kill()
    await degraded
    await eventually(() => attempts() >= 2, 5000, 'a reconnection attempt refused')
    const { value: ms } = await timed(async () => { await kit.client.get('x') })
      .then((t) => ({ value: t.ms }))
    // No SLACK where the promise is "does not wait on Redis at all": a call that did would take the whole TIMEOUT.
    assert.ok(ms < TIMEOUT, `while degraded a call does not wait on Redis (took ${ms} ms)`)
    const ready = waitForState(kit, 'ready')
    const restartedAt = performance.now()
    await server.start()
    await ready
    const backAfter = performance.now() - restartedAt
    const result = await load.stop()
    assert.deepEqual(result.failures, [], 'no call failed')
    assert.ok(result.slowest < TIMEOUT + SLACK, `slowest call ${result.slowest.toFixed(0)} ms`)
    // README: back on Redis within about half a second of Redis answering well again.
    assert.ok(backAfter < MAX_RETRY_DELAY + SLACK, `back on Redis ${backAfter.toFixed(0)} ms after it answered`)
  })

  it('hung (SIGSTOP): calls return within the command timeout, then Redis is used again after SIGCONT', async () => {
    await kit.client.set('before', 'hang')
    server.pause()
    const first = await timed(() => kit.client.get('before'))
    assert.equal(first.value, 'hang', 'answered from the memory twin, which saw the write')
    assert.ok(first.ms < TIMEOUT + SLACK, `first call during the hang took ${first.ms.toFixed(0)} ms`)
    assert.equal(kit.state, 'degraded')
    const rest = await timed(async () => {
      for (let i = 0; i < 20; i++) await kit.client.increment('during-hang')
    })
    assert.ok(rest.ms < TIMEOUT, `calls after the first do not wait on the hung server (${rest.ms.toFixed(0)} ms for 20)`)
    const ready = waitForState(kit, 'ready')
    server.resume()
    await ready
    const redis = direct(server)
    assert.equal(await redis.get('during-hang'), '20', 'increments journaled during the hang were replayed')
    redis.disconnect()
  })

  it('an increment that timed out during a hang is not applied twice', async () => {
    await kit.client.set('doubt', 0)
    server.pause()
    // Sent before the kit knew: times out, may still run when Redis resumes. Not journaled.
    assert.equal(await kit.client.increment('doubt'), 1)
    // Made while degraded: certainly never sent. Journaled and replayed.
    assert.equal(await kit.client.increment('doubt'), 2)
    const ready = waitForState(kit, 'ready')
    server.resume()
    await ready
    const redis = direct(server)
    assert.equal(await redis.get('doubt'), '2', 'one increment from the resumed socket, one from the journal')
    redis.disconnect()
  })

  it('writes Redis refuses (OOM: maxmemory reached) are answered from memory and reach Redis once it accepts writes', async () => {
    const redis = direct(server)
    try {
      await redis.config('SET', 'maxmemory-policy', 'noeviction')
      await redis.config('SET', 'maxmemory', '1')
      // Refused before it ran: journaled, not lost. Reads still work, so the kit keeps trying.
      assert.equal(await kit.client.set('refused', { by: 'oom' }), true)
      assert.equal(await kit.client.increment('refused:count', 5), 5)
      assert.deepEqual(await kit.client.get('refused'), { by: 'oom' })
      assert.equal(kit.state, 'degraded')
      // PING still works, but the kit does not flap back to Redis while writes are refused: it
      // tries to come back (its write check is refused too) and stays degraded, twice over.
      const changes: string[] = []
      kit.on('stateChange', (to) => changes.push(to))
      const refused = await refusedForMemory(redis)
      await eventually(async () => (await refusedForMemory(redis)) >= refused + 2, 10_000, 'two comebacks refused by Redis')
      assert.deepEqual(changes, [], 'stays degraded while Redis refuses writes')
      assert.equal(internals(kit).pending, 2, 'the refused writes are kept for later')
      await redis.config('SET', 'maxmemory', '0')
      await waitForState(kit, 'ready')
      assert.ok((await redis.pttl('refused')) > 3_500_000, 'written back with its TTL')
      assert.equal(await redis.get('refused:count'), '5')
      assert.equal(internals(kit).pending, 0)
    } finally {
      redis.disconnect()
    }
  })

  it('restarted: writes made during the outage are replayed in order, with their TTLs', async () => {
    await kit.client.set('kept', 'old')
    await kit.client.set('removed', 'x')
    await server.kill()
    await waitForState(kit, 'degraded')
    await kit.client.set('kept', 'new', 120)
    await kit.client.delete('removed')
    await kit.client.increment('hits', 3)
    await kit.client.increment('hits', 4)
    await kit.client.set('session-like', { user: 'ada' }, 60)
    await kit.client.expire('session-like', 30)
    await kit.client.set('expires-during-outage', 'x', 0.05)
    // Expires during the outage by the kit's own clocks (memory twin, journal). Not faked: the
    // watchdog and probes time the connection with the same performance.now(). The wait is the TTL.
    await eventually(async () => !(await kit.client.exists('expires-during-outage')), 50 + SLACK, 'expired in the memory twin')
    assert.equal(internals(kit).pending, 5)
    const ready = waitForState(kit, 'ready')
    await server.start()
    await ready
    const check = direct(server)
    assert.equal(await check.get('kept'), 'new')
    const keptTtl = await check.pttl('kept')
    assert.ok(keptTtl > 100_000 && keptTtl <= 120_000, `remaining TTL kept (${keptTtl})`)
    assert.equal(await check.get('hits'), '7', 'increments replay as deltas')
    assert.equal(await check.get('session-like'), '{"user":"ada"}')
    const sessionTtl = await check.pttl('session-like')
    assert.ok(sessionTtl > 20_000 && sessionTtl <= 30_000, `expire replayed (${sessionTtl})`)
    assert.equal(await check.exists('expires-during-outage'), 0, 'an entry that expired during the outage is not resurrected')
    assert.equal(internals(kit).pending, 0)
    check.disconnect()
  })

  it('hung then resumed with its data: deletes and increments replay on top of what Redis holds', async () => {
    await kit.client.increment('visitor_count', 100)
    await kit.client.set('removed', 'x')
    const other = direct(server) // another instance keeps counting
    await other.incrby('visitor_count', 1000)
    server.pause()
    await kit.client.get('trigger') // times out: the kit degrades
    assert.equal(kit.state, 'degraded')
    assert.equal(await kit.client.increment('visitor_count', 5), 105, 'memory continues from what this instance saw')
    assert.equal(await kit.client.delete('removed'), true)
    const ready = waitForState(kit, 'ready')
    server.resume()
    await ready
    assert.equal(await other.get('visitor_count'), '1105', 'the delta, not the absolute value, was replayed')
    assert.equal(await other.exists('removed'), 0, 'the delete made during the outage reached Redis')
    assert.equal(await kit.client.increment('visitor_count'), 1106, 'back on Redis')
    other.disconnect()
  })

  it('logs one line per state change, never one per retry or per call', async () => {
    const attempts = reconnections(kit)
    await server.kill()
    await waitForState(kit, 'degraded')
    for (let i = 0; i < 50; i++) await kit.client.get(`k${i}`)
    await eventually(() => attempts() >= 4, 5000, 'three reconnection attempts refused') // never one log line each
    await server.start()
    await waitForState(kit, 'ready')
    const lines = kit.logger.lines
    assert.equal(lines.filter((l) => l.includes('unavailable')).length, 1, lines.join('\n'))
    assert.equal(lines.filter((l) => l.includes('is back')).length, 1, lines.join('\n'))
    assert.equal(lines.length, 3, lines.join('\n'))
  })

  it('emits stateChange, degraded and recovered', async () => {
    const seen: string[] = []
    kit.on('stateChange', (to, from) => seen.push(`${from}->${to}`))
    kit.on('degraded', (error) => seen.push(`degraded:${error instanceof Error}`))
    kit.on('recovered', () => seen.push('recovered'))
    await server.kill()
    await waitForState(kit, 'degraded')
    await server.start()
    await waitForState(kit, 'ready')
    assert.deepEqual(seen, ['ready->degraded', 'degraded:true', 'degraded->ready', 'recovered'])
  })
})

describe('failover: Redis never reachable at start', () => {
  it('ready() resolves, the kit serves from memory, then moves to Redis when it appears', async () => {
    const port = await freePort()
    const kit = testKit({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT })
    let server: RedisServer | undefined
    try {
      const { ms } = await timed(() => kit.ready())
      assert.equal(kit.state, 'degraded')
      assert.ok(ms < CONNECT_TIMEOUT + SLACK, `ready() settled in ${ms.toFixed(0)} ms`)
      const call = await timed(() => kit.client.set('written-before-redis', 'yes', 600))
      assert.ok(call.ms < TIMEOUT, `a call while Redis is unreachable took ${call.ms.toFixed(0)} ms`)
      assert.equal(await kit.client.get('written-before-redis'), 'yes')
      assert.equal(await kit.client.increment('boot-count'), 1)
      const ready = waitForState(kit, 'ready')
      server = await RedisServer.start({ port })
      await ready
      const redis = direct(server)
      assert.equal(await redis.get('written-before-redis'), 'yes')
      assert.equal(await redis.get('boot-count'), '1')
      redis.disconnect()
    } finally {
      await kit.close()
      await server?.stop()
    }
  })

  it('a black-holed address settles ready() within connectTimeoutMs', async () => {
    // 127.0.0.1 port 9 (discard) is closed here; use a listening socket that never answers instead.
    const { createServer } = await import('node:net')
    const silent = createServer(() => { /* accept and say nothing */ })
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    const address = silent.address()
    const port = typeof address === 'object' && address ? address.port : 0
    // The wait is the kit's connectTimeoutMs itself, on a real timer: a fake one would also stop
    // ioredis' timers and the socket's, which this test needs real.
    const kit = testKit({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 500 })
    try {
      const { ms } = await timed(() => kit.ready())
      assert.equal(kit.state, 'degraded')
      assert.ok(ms < 500 + SLACK, `settled in ${ms.toFixed(0)} ms`)
      assert.match(internals(kit).lastError?.message ?? '', /connectTimeoutMs|timed out|ETIMEDOUT/)
      const call = await timed(() => kit.client.get('x'))
      assert.ok(call.ms < TIMEOUT, `a call while Redis is unreachable took ${call.ms.toFixed(0)} ms`)
    } finally {
      await kit.close()
      silent.close()
    }
  })
})

describe('failover: a full outage journal', () => {
  it('keeps serving, warns once, and replays the keys it could remember', async () => {
    const server = await RedisServer.start({ persist: true })
    const kit = testKit({ url: server.url, journal: { maxEntries: 3 } })
    try {
      await kit.ready()
      await server.kill()
      await waitForState(kit, 'degraded')
      for (let i = 0; i < 10; i++) assert.equal(await kit.client.set(`j${i}`, i), true)
      assert.equal(await kit.client.get('j9'), 9, 'writes past the bound still answer from memory')
      assert.equal(internals(kit).pending, 3)
      assert.equal(kit.logger.lines.filter((l) => l.includes('ERR_KIT_JOURNAL_FULL')).length, 1)
      await server.start()
      await waitForState(kit, 'ready')
      const redis = direct(server)
      assert.deepEqual(await redis.mget('j0', 'j1', 'j2', 'j3'), ['0', '1', '2', null])
      redis.disconnect()
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})

describe('failover: ENABLE_REDIS=false', () => {
  it('never connects and serves every call from memory', async () => {
    const server = await RedisServer.start()
    const kit = testKit({ env: { REDIS_URL: server.url, ENABLE_REDIS: 'false' } })
    try {
      await kit.ready()
      assert.equal(kit.state, 'disabled')
      await kit.client.set('k', 'v')
      assert.equal(await kit.client.get('k'), 'v')
      const redis = direct(server)
      const clients = await redis.client('LIST') as string
      assert.ok(!clients.includes('express-redis-kit'), 'no connection from the kit')
      assert.equal(await redis.get('k'), null)
      redis.disconnect()
      assert.equal(internals(kit).pending, 0, 'nothing is journaled when Redis is off by choice')
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})

describe('failover: wrong password', () => {
  it('degrades with an error that names the auth problem but never the password', async () => {
    const server = await RedisServer.start({ password: 'right-password' })
    const kit = testKit({ url: `redis://:wrong-password@127.0.0.1:${server.port}` })
    const events: string[] = []
    kit.on('degraded', (error) => events.push(error.message))
    try {
      await kit.ready()
      assert.equal(kit.state, 'degraded')
      const message = internals(kit).lastError?.message ?? ''
      assert.match(message, /WRONGPASS|NOAUTH|auth/i)
      assert.equal(await kit.client.increment('n'), 1, 'still serves from memory')
      const everything = [message, ...events, ...kit.logger.lines].join('\n')
      assert.ok(!everything.includes('wrong-password'), everything)
      assert.ok(!everything.includes('right-password'), everything)
    } finally {
      await kit.close()
      await server.stop()
    }
  })

  it('connects with the right password from REDIS_PASSWORD', async () => {
    const server = await RedisServer.start({ password: 's3cret' })
    const kit = testKit({ env: { REDIS_URL: server.url, REDIS_PASSWORD: 's3cret' } })
    try {
      await kit.ready()
      assert.equal(kit.state, 'ready')
      assert.ok(!kit.logger.lines.join('\n').includes('s3cret'))
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})

describe('failover: REDIS_DB', () => {
  it('never uses database 0 in place of a database the server does not have', async () => {
    const server = await RedisServer.start()
    const kit = testKit({ env: { REDIS_URL: server.url, REDIS_DB: '99' } })
    try {
      await kit.ready()
      assert.equal(kit.state, 'degraded')
      assert.match(internals(kit).lastError?.message ?? '', /cannot select database 99/)
      const health = await request(healthApp(kit)).get('/health/redis').expect(503)
      assert.match(health.body.error, /cannot select database 99/, '/health/redis says the kit cannot use Redis, though PING works')
      await kit.client.set('where', 'memory')
      const redis = direct(server)
      assert.equal(await redis.get('where'), null, 'nothing was written to database 0')
      redis.disconnect()
    } finally {
      await kit.close()
      await server.stop()
    }
  })

  it('writes into the configured database', async () => {
    const server = await RedisServer.start()
    const kit = testKit({ env: { REDIS_URL: server.url, REDIS_DB: '3' } })
    try {
      await kit.ready()
      await kit.client.set('in-db-3', 'yes')
      const redis = testClient(server, { db: 3 })
      assert.equal(await redis.get('in-db-3'), 'yes')
      await redis.select(0)
      assert.equal(await redis.get('in-db-3'), null)
      redis.disconnect()
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})
