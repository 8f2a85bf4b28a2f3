/**
 * Regression: the kit stayed degraded for good after a Sentinel failover (chaos smoke run,
 * sentinel-kill). ioredis' failover detector of the dead master's connection stays subscribed to
 * +switch-master; when the announcement lands while a reconnection is asking a sentinel for the
 * master, ioredis abandons that connection attempt and sets the client to 'end' — with no
 * reconnection of its own. Sentinels behind a slow proxy make that window most of the outage.
 */
import assert from 'node:assert/strict'
import type { Kit } from '../../lib/index.js'
import { internals, testKit, waitForState, type RecordingLogger } from '../helpers/kit.js'
import { LatencyProxy } from '../helpers/latency-proxy.js'
import { RedisSentinelGroup } from '../helpers/sentinel.js'

describe('Sentinel: +switch-master while the client asks a sentinel for the master', function () {
  this.timeout(90_000)
  let group: RedisSentinelGroup
  let proxies: LatencyProxy[] = []
  let kit: (Kit & { logger: RecordingLogger }) | undefined

  beforeEach(async function () {
    this.timeout(60_000)
    group = await RedisSentinelGroup.start()
    proxies = await Promise.all(group.sentinels.map((sentinel) => LatencyProxy.start(sentinel.port)))
  })

  afterEach(async () => {
    await kit?.close()
    kit = undefined
    await Promise.all(proxies.map((proxy) => proxy.stop()))
    await group?.stop()
  })

  it('the client ended by ioredis mid-resolve is reconnected: the kit is back on the new master', async () => {
    kit = testKit({ sentinel: { nodes: proxies.map((proxy) => ({ host: '127.0.0.1', port: proxy.port })), name: group.name }, commandTimeoutMs: 300, maxRetryDelayMs: 20 })
    await kit.ready()
    assert.equal(kit.state, 'ready', internals(kit).lastError?.message)
    for (const proxy of proxies) proxy.setLatency(200)
    const ends: string[] = []
    const client = internals(kit).redis
    client?.on('end', () => ends.push(client.status))
    const oldPort = await group.masterPort()
    await group.kill(oldPort)
    const newPort = await group.waitForNewMaster(oldPort)
    await waitForState(kit, 'ready', 15_000).catch((error: unknown) => {
      throw new Error(`${String(error)}; client status ${client?.status ?? '?'}, 'end' events ${ends.length}; `
        + `log:\n${kit!.logger.lines.join('\n')}`)
    })
    assert.match(internals(kit).server, new RegExp(`\\(master 127\\.0\\.0\\.1:${newPort}\\)$`))
  })
})
