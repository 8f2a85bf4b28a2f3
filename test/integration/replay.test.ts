/**
 * Replay, one fault at a time, made deterministic with a TCP proxy between the kit and a real
 * redis-server: replies delayed past the step timeout, a connection cut after Redis ran a batch
 * but before its reply came back, a steady slow Redis, a journal flood, replayed writes Redis
 * rejects. Each test is named after the bug it guards against (issue 10).
 */
import assert from 'node:assert/strict'
import express from 'express'
import type { Redis } from 'ioredis'
import request from 'supertest'
import type { Kit, KitState } from '../../lib/index.js'
import { internals, eventually, testKit, waitForReplay, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { LatencyProxy } from '../helpers/latency-proxy.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { login, sessionApp } from '../helpers/session-app.js'

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

type Eval = (...args: unknown[]) => Promise<unknown>

/**
 * Runs `before` just before the kit sends its next replay batch (an EVAL with keys besides the
 * marker). The batch itself still goes to the real Redis.
 */
function beforeNextBatch(kit: Kit, before: () => void): void {
  const client = internals(kit).redis as unknown as { eval: Eval }
  const original = client.eval
  client.eval = function patched(this: unknown, ...args: unknown[]) {
    if (Number(args[1]) > 1) {
      client.eval = original
      before()
    }
    return original.apply(this, args)
  }
}

describe('replay: exactly once, in order, through a proxy that delays and cuts', function () {
  this.timeout(30_000)
  let server: RedisServer
  let proxy: LatencyProxy
  let kit: Kit & { logger: RecordingLogger }
  let direct: Redis

  beforeEach(async () => {
    server = await RedisServer.start()
    proxy = await LatencyProxy.start(server.port)
    kit = testKit({ url: proxy.url })
    await kit.ready()
    assert.equal(kit.state, 'ready')
    direct = testClient(server)
  })

  afterEach(async () => {
    direct.disconnect()
    await kit.close()
    await proxy.stop()
    await server.stop()
  })

  /** A hang between the kit and Redis (the proxy holds traffic), noticed by the kit. */
  async function outage(): Promise<void> {
    proxy.pause()
    await kit.client.get('notice-the-hang')
    assert.equal(kit.state, 'degraded')
  }

  async function counters(prefix: string, n: number): Promise<number[]> {
    return (await direct.mget(...Array.from({ length: n }, (_, i) => `${prefix}${i}`))).map(Number)
  }

  it('a replay whose reply comes after the step timeout is awaited, not sent again (10,000 counters stayed 13,917)', async () => {
    await outage()
    await Promise.all(Array.from({ length: 1000 }, (_, i) => kit.client.increment(`late:${i}`)))
    beforeNextBatch(kit, () => {
      proxy.setLatency(1500) // longer than the replay step timeout (1000 ms)
      setTimeout(() => proxy.setLatency(0), 1200)
    })
    proxy.resume()
    await waitForReplay(kit)
    assert.deepEqual(new Set(await counters('late:', 1000)), new Set([1]))
  })

  it('a batch whose connection is cut after Redis ran it is resent as the same batch, and Redis skips it', async () => {
    await outage()
    await Promise.all(Array.from({ length: 500 }, (_, i) => kit.client.increment(`cut:${i}`)))
    await kit.client.set('cut:value', 'from-the-outage')
    beforeNextBatch(kit, () => {
      proxy.setLatency(400) // the batch reaches Redis and runs; its reply is held back …
      setTimeout(() => { proxy.cutAll(); proxy.setLatency(0) }, 100) // … and lost with the connection
    })
    proxy.resume()
    await waitForReplay(kit)
    assert.deepEqual(new Set(await counters('cut:', 500)), new Set([1]), 'each counter exactly once')
    assert.equal(await direct.get('cut:value'), 'from-the-outage')
    const markers = await direct.keys('kit:replay:*')
    const ttls = await Promise.all(markers.map((marker) => direct.pttl(marker)))
    assert.ok(ttls.some((ttl) => ttl > 3_600_000), 'the replay left markers kept long enough to outlast an outage')
  })

  it('a write acknowledged after recovery is not overwritten by the older outage write (old data overwrote B with A)', async () => {
    const app = sessionApp(kit)
    await outage()
    await kit.client.set('ab', 'A')
    const during = await login(app, 'alice')
    proxy.resume()
    await waitForState(kit, 'ready')
    await kit.client.set('ab', 'B')
    await request(app.app).post('/logout').set('Cookie', during.cookie).expect(200)
    proxy.cutAll() // a new connection, and a new recovery: nothing of the old outage may come back
    await eventually(() => kit.state === 'degraded' || kit.state === 'ready')
    await waitForState(kit, 'ready')
    assert.equal(await direct.get('ab'), 'B')
    assert.equal(await direct.exists(`session:${during.sid}`), 0, 'a session destroyed after recovery stays destroyed')
  })

  it('a steady 200 ms or 500 ms Redis does not make the kit flap (16 state changes in 5 s at 200 ms)', async () => {
    for (const latency of [200, 500]) {
      const changes: KitState[] = []
      const listener = (to: KitState): void => { changes.push(to) }
      kit.on('stateChange', listener)
      const lines = kit.logger.lines.length
      proxy.setLatency(latency)
      // The scenario is 3 s of steady traffic: a flap needs time to show, and calls answered from
      // memory return at once, so the loop is timed, paced at 20 ms (the pause overlaps the calls).
      const until = Date.now() + 3000
      while (Date.now() < until) {
        await Promise.all([kit.client.increment('steady'), kit.client.get('steady'), sleep(20)])
      }
      kit.off('stateChange', listener)
      assert.ok(changes.length <= 2, `at ${latency} ms: ${changes.length} state changes (${changes.join(', ')})`)
      assert.ok(kit.logger.lines.length - lines <= 2, `at ${latency} ms: ${kit.logger.lines.slice(lines).join('\n')}`)
      proxy.setLatency(0)
      await waitForState(kit, 'ready', 15_000)
    }
  })

  it('a flood of kit.client writes fills only its own journal quota: logins made afterwards still reach Redis', async () => {
    await kit.close()
    kit = testKit({ url: proxy.url, journal: { maxEntries: 100 } })
    await kit.ready()
    const app = sessionApp(kit)
    await outage()
    for (let i = 0; i < 300; i++) await kit.client.set(`flood:${i}`, i)
    const after = await login(app, 'bob')
    proxy.resume()
    await waitForState(kit, 'ready')
    assert.ok(await direct.get(`session:${after.sid}`), 'the login made after the flood is in Redis')
    assert.equal((await direct.keys('flood:*')).length, 100, 'the flood kept its own quota')
    assert.equal(kit.logger.lines.filter((line) => line.includes('ERR_KIT_JOURNAL_FULL') && line.includes('of client')).length, 1)
  })

  it('replayed writes Redis rejects are counted in one log line per outage, not one per key (10,003 lines)', async () => {
    await outage()
    for (let i = 0; i < 300; i++) await kit.client.increment(`typed:${i}`)
    for (let i = 0; i < 300; i++) await direct.hset(`typed:${i}`, 'field', 'x') // another program, meanwhile
    proxy.resume()
    await waitForState(kit, 'ready')
    await eventually(() => kit.logger.lines.some((line) => line.includes('ERR_KIT_REPLAY_REJECTED')))
    const lines = kit.logger.lines.slice(2) // connected, unavailable
    assert.equal(lines.length, 2, lines.join('\n'))
    assert.match(lines[0] as string, /is back.*replayed 300 write\(s\)/)
    assert.match(lines[1] as string, /rejected 300 of the 300 write\(s\).*WRONGTYPE/)
  })
})

describe('cache locks after an outage', function () {
  this.timeout(30_000)

  it('the instance takes over its own lock orphaned by an outage instead of waiting on it (192 requests waited up to 1,120 ms)', async () => {
    const server = await RedisServer.start({ persist: true })
    const kit = testKit({ url: server.url })
    try {
      await kit.ready()
      let release: () => void = () => {}
      let started: () => void = () => {}
      const handlerStarted = new Promise<void>((resolve) => { started = resolve })
      let slow = true
      const app = express()
      app.get('/slow', kit.cache({ ttl: 60, lockWaitMs: 5000 }), async (_req, res) => {
        if (slow) {
          started() // the fill took its lock in Redis before calling the handler
          await new Promise<void>((resolve) => { release = resolve })
        }
        res.json({ ok: true })
      })
      // One host for every request: the host is part of the cache key, and supertest gives each request a new port.
      const get = (): request.Test => request(app).get('/slow').set('host', 'locks.test')
      const first = get().then((res) => res)
      await handlerStarted
      await server.kill() // the store write of this fill will never land: its lock is orphaned (and persisted)
      slow = false
      release()
      assert.equal((await first).status, 200)
      await server.start()
      await waitForState(kit, 'ready')
      const second = await get().expect(200)
      assert.equal(second.headers['x-cache'], 'MISS', 'the lock is taken over, the handler runs and stores')
      const third = await get().expect(200)
      assert.equal(third.headers['x-cache'], 'HIT', 'stored by the request that took the lock over')
    } finally {
      await kit.close()
      await server.stop()
    }
  })
})
