/**
 * One failover run of the chaos benchmark (E: `cluster-kill`, F: `sentinel-kill`): a fresh
 * topology (bench/chaos/topologies.ts) for one server under test, the same load and job stream as
 * the single-server scenarios, and at a third of the run the master serving `visitor_count` is
 * killed with kill -9 and not restarted. The outage lasts until the topology reports the new
 * master; afterwards the counts are read from whichever master serves each key now.
 */
import { loadavg } from 'node:os'
import type { Redis } from 'ioredis'
import { inDoubt, onRedis, POLL_INTERVAL_MS, stateChanges, stopRun, visitCounts, waitBackOnRedis } from './app-state.js'
import { countJobs, startJobStream, type JobStream, type JobStreamResult } from './jobs.js'
import { watchKitMetrics, type KitMetricsRun, type KitMetricsWatch } from './kit-metrics.js'
import { getJson, login, pollHealth, startLoad, targetPath } from './load.js'
import { startApp, stopApp, type AppProcess, type Contender } from './servers.js'
import { isFailure, type FailoverScenario, type RunResult } from './stats.js'
import { keyCensus, monitorLatency, readLatency, startTopology, withNode, type Topology, type TopologyKind } from './topologies.js'

export interface FailoverSettings {
  readonly durationS: number
  readonly connections: number
  readonly timeoutS: number
  readonly targets: number
  readonly peerPollTimeoutMs: number
  readonly redisLatencyThresholdMs: number
  /** Job stream adds per second (0: none) and how long the count waits for the acknowledged jobs. */
  readonly jobRate: number
  readonly jobWaitMs: number
  readonly log: (line: string) => void
}

/** After the load: how long the server gets to be back on Redis. */
const BACK_DEADLINE_MS = 10_000
/** Setup requests are repeated until they succeed: the peer's rate limiter can answer 500 at first (NOSCRIPT on a Cluster). */
const SETUP_ATTEMPTS = 50
const SETUP_RETRY_MS = 100
/** The key whose master is killed: `/api/visits` increments it, so the data check covers the failover. */
const VISITS_KEY = 'visitor_count'

const sleepUntil = (time: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, time - performance.now())))

export const topologyOf = (scenario: FailoverScenario): TopologyKind => (scenario === 'cluster-kill' ? 'cluster' : 'sentinel')

/**
 * Where each server's BullMQ keeps a job: the kit's prefix `job`, raw BullMQ's `bull`; on a Cluster
 * the queue's name is hash-tagged (`{scan}`: by the kit itself, by hand in the peer).
 */
const jobKey = (kind: TopologyKind, contender: Contender, id: string): string =>
  `${contender === 'kit' ? 'job' : 'bull'}:${kind === 'cluster' ? '{scan}' : 'scan'}:${id}`

/** Repeats one setup request until it succeeds, counting the failed answers by `what` and status. */
async function untilOk<T>(what: string, failures: Record<string, number>, attempt: () => Promise<{ ok: true; value: T } | { ok: false; answer: string }>): Promise<T> {
  let last = ''
  for (let i = 0; i < SETUP_ATTEMPTS; i++) {
    const result = await attempt()
    if (result.ok) return result.value
    last = `${what} ${result.answer}`
    failures[last] = (failures[last] ?? 0) + 1
    await new Promise((resolve) => setTimeout(resolve, SETUP_RETRY_MS))
  }
  throw new Error(`setup: ${what} did not succeed in ${SETUP_ATTEMPTS} attempts (last: ${last})`)
}

/** Login and warm-up, each repeated until it succeeds; returns the session cookie. */
async function setUp(app: AppProcess, targets: number, failures: Record<string, number>): Promise<string> {
  const cookie = await untilOk('POST /login', failures, async () => {
    try {
      return { ok: true, value: await login(app.port, 'chaos') }
    } catch (error) {
      const status = error instanceof Error ? /answered (\d+)/.exec(error.message)?.[1] : undefined
      return { ok: false, answer: status ?? 'no answer' }
    }
  })
  for (let i = 0; i < targets; i++) {
    await untilOk('GET /api/scans', failures, async () => {
      try {
        const warm = await getJson(app.port, targetPath(i), 5000, undefined, cookie)
        return warm.status === 200 ? { ok: true, value: undefined } : { ok: false, answer: String(warm.status) }
      } catch {
        return { ok: false, answer: 'no answer' }
      }
    })
  }
  return cookie
}

/** A short-lived client to the master serving `key` now (null when it cannot be found or read). */
async function onMasterOf<T>(topology: Topology, key: string, use: (client: Redis) => Promise<T>): Promise<T | null> {
  let port: number
  try {
    port = await topology.masterFor(key)
  } catch {
    return null
  }
  return withNode(port, use)
}

export async function runFailover(contender: Contender, scenario: FailoverScenario, settings: FailoverSettings): Promise<RunResult> {
  const { durationS, log } = settings
  const kind = topologyOf(scenario)
  const topology = await startTopology(kind)
  let app: AppProcess | undefined
  try {
    const redisLatency = new Map<string, number>()
    await monitorLatency(topology.dataPorts(), settings.redisLatencyThresholdMs)
    app = await startApp(contender, topology.env(contender))
    log(`${contender} ${scenario}: ${topology.description}; server pid ${app.child.pid ?? '?'} on ${app.port}`)
    const setupFailures: Record<string, number> = {}
    const cookie = await setUp(app, settings.targets, setupFailures)
    if (!(await onRedis(app, 30_000))) throw new Error(`${contender} ${scenario}: not on Redis before the load`)
    const setupEndedAt = performance.now()
    const metricsWatch: KitMetricsWatch | undefined = contender === 'kit' ? await watchKitMetrics(app.port, 1000) : undefined
    const poller = pollHealth(app.port, contender === 'kit' ? '/health' : '/health/redis', POLL_INTERVAL_MS,
      contender === 'kit' ? 1000 : settings.peerPollTimeoutMs)
    const loadAverage = loadavg()[0] ?? 0
    const load = startLoad({ port: app.port, cookie, connections: settings.connections, durationS, timeoutS: settings.timeoutS, targets: settings.targets })
    const jobStream: JobStream | undefined = settings.jobRate > 0
      ? startJobStream({ port: app.port, perSecond: settings.jobRate, timeoutMs: settings.timeoutS * 1000 })
      : undefined
    let faultAt = Infinity
    let returnAt = Infinity
    let killedPort = 0
    let newMasterPort = 0
    let killedKeys: Record<string, number> = {}
    try {
      await sleepUntil(load.t0 + (durationS * 1000) / 3)
      killedPort = await topology.masterFor(VISITS_KEY)
      killedKeys = (await keyCensus(killedPort)) ?? {}
      // The kill loses the node's latency history: read it first.
      await readLatency(topology.dataPorts(), redisLatency)
      faultAt = performance.now()
      await topology.kill(killedPort)
      log(`${contender} ${scenario}: master ${killedPort} killed (-9) at ${((faultAt - load.t0) / 1000).toFixed(2)} s`)
      newMasterPort = await topology.waitForNewMaster(killedPort)
      returnAt = performance.now()
      log(`${contender} ${scenario}: new master ${newMasterPort} reported at ${((returnAt - load.t0) / 1000).toFixed(2)} s (${((returnAt - faultAt) / 1000).toFixed(2)} s after the kill)`)
    } catch (error) {
      await stopRun({ load, poller, metricsWatch, jobStream })
      throw error
    }
    const { samples, inFlightAtEnd, inFlightByRoute } = await load.done
    const jobRequests = await jobStream?.stop()
    const endAt = Math.min(performance.now(), load.t0 + durationS * 1000)
    const back = await waitBackOnRedis(app, poller, returnAt, BACK_DEADLINE_MS)
    const polls = await poller.stop()
    await metricsWatch?.stopPolling()
    await readLatency(topology.dataPorts(), redisLatency)
    let meAfter = 0
    try { meAfter = (await getJson(app.port, '/me', 15_000, undefined, cookie)).status } catch { /* 0 = no answer */ }
    const visitsInRedis = await onMasterOf(topology, VISITS_KEY, async (client) => Number((await client.get(VISITS_KEY)) ?? 0))
    let jobs: JobStreamResult | undefined
    if (jobRequests) {
      // Every job key of a queue lives on one master (one hash tag on a Cluster).
      const someJob = jobKey(kind, contender, '0')
      jobs = await countJobs({
        requests: jobRequests, perSecond: settings.jobRate, faultAt, returnAt, deadlineMs: settings.jobWaitMs,
        keyOf: (id) => jobKey(kind, contender, id), withRedis: (use) => onMasterOf(topology, someJob, use),
      })
      log(`${contender} ${scenario}: job stream sent ${jobs.sent}, ${jobs.acknowledged} acknowledged, ${jobs.processed} processed, `
        + `${jobs.lost} lost, ${jobs.ranTwice} ran twice (waited ${(jobs.waitedMs / 1000).toFixed(1)} s)`)
    }
    const kitMetrics: KitMetricsRun | undefined = metricsWatch ? await metricsWatch.finish(app.lines) : undefined
    log(`${contender} ${scenario}: ${samples.length} requests, ${samples.filter(isFailure).length} failed${back ? '' : ', NOT back on Redis in time'}`)
    if (process.env.CHAOS_LOG === '1') log(`${contender} ${scenario} server output:\n${app.output.join('\n')}`)
    return {
      contender, scenario, loadAverage, inFlightAtEnd, t0: load.t0, faultAt, returnAt, endAt, timeoutMs: settings.timeoutS * 1000, samples, polls, meAfter,
      visits: visitCounts(samples, inFlightByRoute, visitsInRedis, contender === 'kit' ? inDoubt(app, VISITS_KEY) : undefined),
      unhandledRejections: app.output.filter((line) => line.includes('unhandledRejection')).length,
      stateChanges: contender === 'kit' ? stateChanges(app) : [],
      eld: [...app.eld],
      ...(jobs ? { jobs } : {}),
      failover: { topology: topology.description, killedPort, newMasterPort, killedKeys, setupFailures },
      backTimedOut: !back,
      setupEndedAt,
      redisLatency: Object.fromEntries(redisLatency),
      ...(kitMetrics ? { kitMetrics } : {}),
    }
  } finally {
    if (app) await stopApp(app)
    await topology.stop()
  }
}
