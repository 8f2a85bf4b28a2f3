/**
 * Redis Sentinel (issue 12), on real processes: a master, one replica and three sentinels on free
 * loopback ports (helpers/sentinel.ts). The kit is configured the way the README says
 * (REDIS_SENTINELS + REDIS_SENTINEL_NAME, or the `sentinel` option); a URL that points at a
 * sentinel or at the replica is refused with the fix; and a master killed under load is followed
 * to its replica without a failed request, a lost write, or more than one round trip to memory.
 */
import assert from 'node:assert/strict'
import express from 'express'
import request from 'supertest'
import type { Kit, KitState } from '../../lib/index.js'
import { exerciseEveryFeature } from '../helpers/every-feature.js'
import { internals, SLACK, testKit, timed, waitForReplay, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisSentinelGroup } from '../helpers/sentinel.js'
import { Workload } from '../helpers/workload.js'

const TIMEOUT = 300
/** The kit's default connectTimeoutMs. */
const CONNECT_TIMEOUT = 2000

function healthApp(kit: Kit): express.Express {
  const app = express()
  app.use('/health', kit.healthRouter({ details: true })) // these tests read the server's name and the errors
  return app
}

function sentinelList(group: RedisSentinelGroup): string {
  return group.sentinels.map((s) => `${s.host}:${s.port}`).join(',')
}

describe('Sentinel: configuration and every feature', function () {
  this.timeout(60_000)
  let group: RedisSentinelGroup
  let kit: (Kit & { logger: RecordingLogger }) | undefined

  before(async function () {
    this.timeout(60_000)
    group = await RedisSentinelGroup.start()
  })

  afterEach(async () => {
    await kit?.close()
    kit = undefined
  })

  after(async () => {
    await group?.stop()
  })

  it('REDIS_SENTINELS + REDIS_SENTINEL_NAME: every feature works on the master the sentinels name, and /health names it', async () => {
    kit = testKit({ env: { REDIS_SENTINELS: sentinelList(group), REDIS_SENTINEL_NAME: group.name } })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    const masterPort = await group.masterPort()
    const master = testClient(masterPort)
    await exerciseEveryFeature(kit, master, '', 'sentinel')
    const health = await request(healthApp(kit)).get('/health').expect(200)
    assert.equal(health.body.status, 'ok')
    assert.match(health.body.server, new RegExp(`^sentinel master 'mymaster' via [\\d.:,]+ \\(master 127\\.0\\.0\\.1:${masterPort}\\)$`))
    assert.match(kit.logger.lines.join('\n'), new RegExp(`connected at sentinel master 'mymaster' .*\\(master 127\\.0\\.0\\.1:${masterPort}\\)`))
  })

  it('REDIS_URL pointing at a sentinel: stays on memory at once, and the log and /health say it is a Sentinel and what to set', async () => {
    const sentinelPort = group.sentinels[0]?.port
    kit = testKit({ env: { REDIS_URL: `redis://127.0.0.1:${sentinelPort}` } })
    const { ms } = await timed(() => (kit as Kit).ready())
    assert.equal(kit.state, 'degraded')
    assert.ok(ms < CONNECT_TIMEOUT, `settled without waiting for connectTimeoutMs (${ms.toFixed(0)} ms)`)
    const fix = new RegExp(`is a Redis Sentinel, not a data server \\(it monitors 'mymaster' at 127\\.0\\.0\\.1:\\d+\\): configure REDIS_SENTINELS=127\\.0\\.0\\.1:${sentinelPort} and REDIS_SENTINEL_NAME=mymaster`)
    const health = await request(healthApp(kit)).get('/health/redis').expect(503)
    assert.match(health.body.error, fix)
    const summary = await request(healthApp(kit)).get('/health').expect(200)
    assert.match(summary.body.redis.error, fix)
    const lines = kit.logger.lines.join('\n')
    assert.match(lines, fix)
    assert.equal(kit.logger.lines.length, 1, `one line: ${lines}`)
    assert.equal(await kit.client.set('where', 'memory'), true, 'writes are served from memory')
    assert.equal(await kit.client.get('where'), 'memory')
    assert.equal(internals(kit).pending, 1, 'and journaled, not lost')
  })

  it('REDIS_URL pointing at the replica: stays on memory, and says it is a read-only replica of the master', async () => {
    const masterPort = await group.masterPort()
    const replica = group.nodes.find((node) => node.kind === 'redis' && node.port !== masterPort)
    kit = testKit({ env: { REDIS_URL: `redis://127.0.0.1:${replica?.port}` } })
    await kit.ready()
    assert.equal(kit.state, 'degraded')
    const fix = new RegExp(`is a read-only replica of 127\\.0\\.0\\.1:${masterPort}: point REDIS_URL at the master, or use Sentinel \\(REDIS_SENTINELS\\)`)
    const health = await request(healthApp(kit)).get('/health/redis').expect(503)
    assert.match(health.body.error, fix)
    assert.match(kit.logger.lines.join('\n'), fix)
  })
})

describe('Sentinel: the master killed under load', function () {
  this.timeout(90_000)
  let group: RedisSentinelGroup
  let kit: Kit & { logger: RecordingLogger }

  beforeEach(async function () {
    this.timeout(60_000)
    group = await RedisSentinelGroup.start()
  })

  afterEach(async () => {
    await kit?.close()
    await group?.stop()
  })

  it('kill -9: no failed request, no call over commandTimeoutMs, at most two state changes, back within 1 s of the new master, Redis holds what was acknowledged', async () => {
    kit = testKit({ sentinel: { nodes: group.sentinels, name: group.name }, commandTimeoutMs: TIMEOUT })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    const load = new Workload(kit, { clientLoops: 20, httpLoops: 4 }, 'sf')
    await load.start()
    await load.advance(400, 40)
    const changes: { to: KitState; at: number }[] = []
    kit.on('stateChange', (to) => changes.push({ to, at: performance.now() }))
    const oldPort = await group.masterPort()
    const degraded = waitForState(kit, 'degraded', 5000)
    await group.kill(oldPort)
    await degraded
    const newPort = await group.waitForNewMaster(oldPort)
    const reportedAt = performance.now()
    await waitForState(kit, 'ready', 10_000)
    await load.advance(400, 40) // on the new master
    const result = await load.stop()
    await waitForReplay(kit)
    const readyAt = changes.find((change) => change.to === 'ready')?.at ?? Number.POSITIVE_INFINITY
    assert.deepEqual(result.failures, [], 'no call or request failed')
    assert.ok(result.slowestCallMs <= TIMEOUT + SLACK, `slowest call ${result.slowestCallMs.toFixed(0)} ms`)
    assert.ok(result.slowestRequestMs <= TIMEOUT + SLACK, `slowest request ${result.slowestRequestMs.toFixed(0)} ms`)
    assert.deepEqual(changes.map((change) => change.to), ['degraded', 'ready'], 'one trip to memory and back')
    assert.ok(readyAt - reportedAt <= 1000 + SLACK, `back on Redis ${(readyAt - reportedAt).toFixed(0)} ms after the sentinels reported the new master`)
    assert.match(kit.logger.lines.join('\n'), new RegExp(`is back at sentinel master 'mymaster' .*\\(master 127\\.0\\.0\\.1:${newPort}\\)`))
    await load.verify(testClient(newPort))
  })

  it('a sentinel down, then the master killed: the other two fail over, the kit follows, and the dead sentinel prints nothing', async () => {
    kit = testKit({ env: { REDIS_SENTINELS: sentinelList(group), REDIS_SENTINEL_NAME: group.name }, commandTimeoutMs: TIMEOUT })
    await kit.ready()
    assert.equal(kit.state, 'ready')
    // ioredis' failover detector watches every sentinel on a client of its own; a dead sentinel made it
    // print "[ioredis] Unhandled error event" (which fails this run: test/setup.ts).
    await group.kill(group.sentinels[0]?.port ?? 0)
    await kit.client.set('before', 'failover')
    const oldPort = await group.masterPort()
    await group.kill(oldPort)
    const newPort = await group.waitForNewMaster(oldPort)
    await waitForState(kit, 'ready', 10_000)
    assert.match(internals(kit).server, new RegExp(`\\(master 127\\.0\\.0\\.1:${newPort}\\)$`))
    assert.equal(await testClient(newPort).get('before'), 'failover', 'replicated before the kill')
    assert.equal(await kit.client.increment('after'), 1)
    assert.equal(await testClient(newPort).get('after'), '1')
  })
})
