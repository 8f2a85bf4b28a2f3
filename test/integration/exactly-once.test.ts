/**
 * The outage journal, exactly once, under every fault (issue 10): with 50 client loops and HTTP
 * loops through sessions, rate limiting and the cache running, Redis is killed, slowed, paused,
 * its connection killed, this process stalled at recovery, or Redis hung — and afterwards Redis
 * holds exactly what the kit acknowledged, and no call or request failed.
 *
 * The only writes allowed to differ are increments and rate-limit hits that were on the wire
 * when a connection died: the kit reports each one (`inDoubt` event) instead of guessing, and the
 * checks allow exactly that amount. Faults that leave the connection alive must report none.
 */
import assert from 'node:assert/strict'
import type { Redis } from 'ioredis'
import type { Kit } from '../../lib/index.js'
import { internals, eventually, testKit, waitForReplay, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { Workload } from '../helpers/workload.js'

const LOAD = { clientLoops: 50, httpLoops: 6 }

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function admin(server: RedisServer): Redis {
  return testClient(server, { maxRetriesPerRequest: 1 })
}

/** The id of the kit's own connection, by the name it gives itself. */
async function kitConnection(redis: Redis): Promise<string | undefined> {
  const list = await redis.client('LIST') as string
  return list.split('\n').find((line) => line.includes('name=express-redis-kit '))?.match(/^id=(\d+)/)?.[1]
}

describe('exactly once: the journal and every call under faults, with concurrent load', function () {
  this.timeout(60_000)
  let server: RedisServer
  let kit: Kit & { logger: RecordingLogger }
  let redis: Redis

  async function setUp(options: Parameters<typeof testKit>[0] = {}): Promise<Workload> {
    server = await RedisServer.start({ persist: true, debug: true })
    kit = testKit({ url: server.url, ...options })
    await kit.ready()
    assert.equal(kit.state, 'ready')
    redis = admin(server)
    const load = new Workload(kit, LOAD)
    await load.start()
    await load.advance(500, 50) // every loop is running on Redis before the fault
    return load
  }

  /** Stops the load once the kit is back, and compares Redis with what it acknowledged. */
  async function settle(load: Workload, connectionSurvived: boolean): Promise<void> {
    try {
      await waitForReplay(kit, 20_000)
    } catch (error) {
      await load.stop()
      throw new Error(`${(error as Error).message}; pending ${internals(kit).pending}; error ${internals(kit).lastError?.message}\n${kit.logger.lines.join('\n')}`, { cause: error })
    }
    await load.advance(600, 60) // and keeps running on Redis after it
    const result = await load.stop()
    await waitForReplay(kit, 20_000)
    assert.deepEqual(result.failures.map(String), [], 'no call and no request failed')
    assert.ok(result.calls > 1000 && result.requests > 100, `load ran (${result.calls} calls, ${result.requests} requests)`)
    const { inDoubt } = await load.verify(redis)
    if (connectionSurvived) assert.equal(inDoubt, 0, 'the connection survived, so every outcome was learned')
  }

  afterEach(async () => {
    server.resume()
    redis?.disconnect()
    await kit?.close()
    await server.stop()
  })

  it('kill -9 and restart, with 10,000 counters incremented during the outage: exactly 10,000 in Redis', async () => {
    const load = await setUp({ journal: { maxEntries: 20_000 } })
    await server.kill()
    await waitForState(kit, 'degraded')
    const counters = Array.from({ length: 10_000 }, (_, i) => kit.client.increment(`full:${i}`))
    assert.deepEqual(new Set(await Promise.all(counters)), new Set([1]))
    await server.start()
    await settle(load, false)
    let total = 0
    let keys = 0
    for (let i = 0; i < 10_000; i += 1000) {
      const values = await redis.mget(...Array.from({ length: 1000 }, (_, j) => `full:${i + j}`))
      for (const value of values) { total += Number(value); if (value !== null) keys++ }
    }
    assert.equal(keys, 10_000)
    assert.equal(total, 10_000, 'each counter exactly once')
  })

  for (const seconds of [0.2, 0.5]) {
    it(`Redis slowed by a DEBUG SLEEP ${seconds} loop for 2 s: nothing doubled, nothing lost`, async () => {
      const load = await setUp()
      const sleeper = admin(server)
      const until = Date.now() + 2000
      while (Date.now() < until) await sleeper.call('DEBUG', 'SLEEP', String(seconds))
      sleeper.disconnect()
      await settle(load, true)
    })
  }

  it('CLIENT PAUSE WRITE while the kit tries to recover: replays wait instead of being resent', async () => {
    const load = await setUp()
    await redis.call('CLIENT', 'PAUSE', '1500', 'WRITE')
    await waitForState(kit, 'degraded')
    // Probes answer (PING is not a write) but every comeback's write check and replay hangs until
    // the pause ends, so settle() cannot see the replay done before then: no wait of our own.
    await settle(load, true)
  })

  it('CLIENT KILL of the kit\'s connection, three times: in-flight increments are reported, everything else exact', async () => {
    const load = await setUp()
    for (let i = 0; i < 3; i++) {
      const id = await kitConnection(redis)
      if (id) await redis.call('CLIENT', 'KILL', 'ID', id)
      // The next kill strikes the kit's next connection (whether the kit is back on it yet or still
      // holding down after the flap), with the load running meanwhile.
      await eventually(async () => ![undefined, id].includes(await kitConnection(redis)), 10_000, 'the kit reconnected')
      await load.advance(200, 10)
    }
    await settle(load, false)
  })

  it('this process stalls for 1 s just as the kit recovers: late-read replies are not taken for lost ones', async () => {
    const load = await setUp()
    let stalled = false
    kit.on('stateChange', (to) => {
      if (to !== 'ready' || stalled) return
      stalled = true
      const until = performance.now() + 1000
      while (performance.now() < until) { /* the event loop is blocked, replies pile up unread */ }
    })
    server.pause()
    await waitForState(kit, 'degraded')
    await load.advance(200, 10) // answered from memory, journaled for the replay
    server.resume()
    await settle(load, true)
    assert.ok(stalled)
  })

  it('SIGSTOP for 1.5 s, then SIGCONT: every call answered within the timeout, every write exactly once', async () => {
    const load = await setUp()
    server.pause()
    await waitForState(kit, 'degraded')
    await sleep(1500) // the fault itself lasts 1.5 s (the test's scenario), not a wait for a condition
    server.resume()
    await settle(load, true)
  })
})
