/**
 * Chaos benchmark: the example server vs the same routes on the raw peer stack, each under
 * autocannon load while its own redis-server is killed (A: kill -9, restart on the same port),
 * hung (B: SIGSTOP, SIGCONT), slowed (C: every reply delayed by a LatencyProxy, then not), or
 * killed while a burst of cache invalidations fills the kit's outage journal (D: kill -9, DELETE
 * burst, restart from the append-only file); and on replicated topologies (bench/chaos/topology-run.ts),
 * each contender on a fresh one: a Redis Cluster of 3 masters + 1 replica each (E: cluster-kill) or
 * a master + replica + 3 sentinels (F: sentinel-kill), the master serving `visitor_count` killed
 * with kill -9 and never restarted, so a replica takes over. Every response is recorded; the report splits them
 * into before / outage / after and the plot shows latency and throughput over time. Through every
 * run a job stream adds one background scan job per request (bench/chaos/jobs.ts); afterwards
 * Redis tells which acknowledged jobs were processed, lost or run twice.
 *
 *   npm run bench:chaos                      # 12 runs of 30 s, writes bench/results/chaos.md, chaos.svg (A–D), chaos-topologies.svg (E, F)
 *   CHAOS_SMOKE=1 npm run bench:chaos        # 12 runs of 6 s, writes to a temp directory
 *
 * chaos.md has two parts, A–D and E–F: a run of only some scenarios rewrites the part(s) it ran
 * and keeps the other from the report already there.
 *
 * Env: CHAOS_SECONDS (30), CHAOS_CONNECTIONS (10), CHAOS_TIMEOUT_S (min(10, seconds/3)),
 * CHAOS_ONLY (kit | peer), CHAOS_SCENARIOS (kill,stop,slow,journal,cluster-kill,sentinel-kill), CHAOS_SLOW_MS (200),
 * CHAOS_JOURNAL_KEYS (10500; smoke 1000), CHAOS_OUT (output directory), CHAOS_LOG=1 (print each
 * server's output after its run), CHAOS_JOB_RATE (job adds per second, 5; 0: no job stream),
 * CHAOS_JOB_MS (how long one scan job takes, 200), CHAOS_JOB_WAIT_S (how long to wait after a run
 * for the acknowledged jobs to finish, 60), CHAOS_METRICS_POLL_MS (how often the kit's `/metrics` is polled, 250).
 * The servers under test run as child processes; the load, the fault injection, the proxy, the
 * burst, the health polling and, for the kit, the polling of its own `/metrics` (bench/chaos/kit-metrics.ts) run here. Everything started is stopped on exit, errors and
 * Ctrl-C included.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { RedisServer } from '../test/helpers/redis-server.js'
import { inDoubt, onRedis, POLL_INTERVAL_MS, stateChanges, stopRun, visitCounts, waitBackOnRedis } from './chaos/app-state.js'
import { countJobs, startJobStream, type JobStream, type JobStreamResult } from './chaos/jobs.js'
import { watchKitMetrics, type KitMetricsRun, type KitMetricsWatch } from './chaos/kit-metrics.js'
import { burst, getJson, login, pollHealth, startLoad, targetPath, type BurstResult } from './chaos/load.js'
import { renderSvg } from './chaos/plot.js'
import {
  cleanup, killAllNow, restartRedis, SCAN_JOB_MS, startApp, startProxy, startRedis, stopApp, stopProxy, stopRedis, type AppProcess, type Contender, type ProxyProcess,
} from './chaos/servers.js'
import {
  isFailover, isFailure, renderReport, SCENARIOS as ALL_SCENARIOS, type FailoverScenario, type JournalBurst, type RunResult, type Scenario,
} from './chaos/stats.js'
import { stopTopologies, withNode } from './chaos/topologies.js'
import { FAILOVER_PLOT_LABELS, mergeReport, renderFailoverReport } from './chaos/topology-report.js'
import { runFailover } from './chaos/topology-run.js'

const SMOKE = process.env.CHAOS_SMOKE === '1'
const DURATION_S = Number(process.env.CHAOS_SECONDS ?? (SMOKE ? 6 : 30))
const CONNECTIONS = Number(process.env.CHAOS_CONNECTIONS ?? 10)
const TIMEOUT_S = Number(process.env.CHAOS_TIMEOUT_S ?? Math.min(10, Math.max(1, Math.floor(DURATION_S / 3))))
const TARGETS = 20
const PEER_POLL_TIMEOUT_MS = 1000
const OUT_DIR = process.env.CHAOS_OUT ?? (SMOKE ? join(tmpdir(), 'erk-chaos-smoke') : join(__dirname, 'results'))
const CONTENDERS: Contender[] = process.env.CHAOS_ONLY === 'kit' || process.env.CHAOS_ONLY === 'peer' ? [process.env.CHAOS_ONLY] : ['kit', 'peer']
const SCENARIOS = (process.env.CHAOS_SCENARIOS ?? ALL_SCENARIOS.join(',')).split(',').map((name) => name.trim()).filter((name) => name !== '').map((name) => {
  if (!(ALL_SCENARIOS as readonly string[]).includes(name)) throw new Error(`CHAOS_SCENARIOS: unknown scenario "${name}" (known: ${ALL_SCENARIOS.join(', ')})`)
  return name as Scenario
})
/** C: the reply latency during the slow window (the kit's commandTimeoutMs is 300 by default). */
const SLOW_MS = Number(process.env.CHAOS_SLOW_MS ?? 200)
/** D: distinct targets pre-filled, then invalidated during the outage; the kit's journal holds 10,000 per feature. */
const JOURNAL_KEYS = Number(process.env.CHAOS_JOURNAL_KEYS ?? (SMOKE ? 1000 : 10_500))
const JOURNAL_MAX_ENTRIES = 10_000
const BURST_CONCURRENCY = 16
const PREFILL_CONCURRENCY = 100
/** After the load: how long the server gets to be back on Redis (D: the kit replays its journal first). */
const BACK_DEADLINE_MS = 10_000
const JOURNAL_BACK_DEADLINE_MS = 120_000
/** Redis logs its own events (fsync, slow commands) at or above this in `LATENCY LATEST`. */
const REDIS_LATENCY_THRESHOLD_MS = 20
/** The job stream: adds per second (0: none), and how long the count waits for the acknowledged jobs after a run. */
const JOB_RATE = Number(process.env.CHAOS_JOB_RATE ?? 5)
const JOB_WAIT_MS = Number(process.env.CHAOS_JOB_WAIT_S ?? 60) * 1000
/** Where each server's BullMQ keeps a job: the kit's queue prefix `job`, raw BullMQ's default `bull`. */
const jobKey = (contender: Contender, id: string): string => `${contender === 'kit' ? 'job' : 'bull'}:scan:${id}`

const log = (line: string): void => { process.stderr.write(`[chaos] ${line}\n`) }
const sleepUntil = (time: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, time - performance.now())))

/** A short-lived client straight to the redis-server (never through the proxy). */
function withRedis<T>(redis: RedisServer, use: (client: Redis) => Promise<T>): Promise<T | null> {
  return withNode(redis.port, use)
}

/** Reads `visitor_count` straight from Redis (null when it cannot be read). */
function readVisits(redis: RedisServer): Promise<number | null> {
  return withRedis(redis, async (client) => {
    const value = await client.get('visitor_count')
    return value === null ? 0 : Number(value)
  })
}

/** D: the targets of the burst. */
const journalPath = (index: number): string => `/api/scans/j${index}.example`

/** D: the Redis key of a cached response: the kit's entry hash, apicache's hash (its key is the URL). */
const cachedKey = (contender: Contender, path: string): string => (contender === 'kit' ? `cache:e:${path}` : path)

/** Which of the keys exist, in order (null when Redis cannot be read). */
function existing(redis: RedisServer, keys: readonly string[]): Promise<boolean[] | null> {
  return withRedis(redis, async (client) => {
    const out: boolean[] = []
    for (let i = 0; i < keys.length; i += 1000) {
      const pipeline = client.pipeline()
      for (const key of keys.slice(i, i + 1000)) pipeline.exists(key)
      for (const [error, value] of (await pipeline.exec()) ?? []) {
        if (error) throw error
        out.push(value === 1)
      }
    }
    return out
  })
}

/** Lowers Redis' latency monitor threshold, so `LATENCY LATEST` tells whether Redis itself stalled (fsync, …). */
async function monitorLatency(redis: RedisServer): Promise<void> {
  await withRedis(redis, (client) => client.config('SET', 'latency-monitor-threshold', String(REDIS_LATENCY_THRESHOLD_MS)))
}

/** B: forgets the event that spans the SIGSTOP (Redis logs it once it runs again, before it reads our command). */
async function resetLatency(redis: RedisServer): Promise<void> {
  await withRedis(redis, (client) => client.call('LATENCY', 'RESET'))
}

/** Redis' own latency events (`LATENCY LATEST`: worst ms per event since it started), merged into `into`. */
async function readLatency(redis: RedisServer, into: Map<string, number>): Promise<void> {
  const latest = await withRedis(redis, (client) => client.call('LATENCY', 'LATEST') as Promise<unknown[]>)
  for (const entry of latest ?? []) {
    if (!Array.isArray(entry)) continue
    const [event, , , max] = entry as [string, number, number, number]
    into.set(event, Math.max(into.get(event) ?? 0, Number(max)))
  }
}

interface JournalSetup {
  readonly paths: string[]
  readonly presentBefore: boolean[]
  /** How many GETs each pre-fill round sent (more than one round: fills were lost to a degraded kit). */
  readonly prefillRounds: number[]
}

/**
 * D: caches every target in Redis through the server itself and checks each is there. A fill the
 * kit answered while degraded stays in its memory (which it empties when it goes back to Redis),
 * so the missing ones are requested again, once the server is on Redis, for a few rounds.
 */
async function prefill(app: AppProcess, redis: RedisServer): Promise<JournalSetup> {
  const paths = Array.from({ length: JOURNAL_KEYS }, (_, i) => journalPath(i))
  const keys = paths.map((path) => cachedKey(app.contender, path))
  const started = performance.now()
  let missing = paths.map((_, i) => i)
  let present: boolean[] = []
  const rounds: number[] = []
  for (let round = 0; round < 5 && missing.length > 0; round++) {
    rounds.push(missing.length)
    const filled = await burst({ port: app.port, method: 'GET', paths: missing.map((i) => paths[i] as string), concurrency: PREFILL_CONCURRENCY, timeoutMs: 30_000 })
    const bad = filled.statuses.filter((status) => status !== 200).length
    if (bad > 0) throw new Error(`pre-fill: ${bad} of ${missing.length} GETs did not answer 200`)
    if (!(await onRedis(app, 30_000))) throw new Error('pre-fill: the server is not back on Redis within 30 s')
    // apicache writes to Redis fire-and-forget: give them a moment to land.
    for (let attempt = 0; attempt < 20; attempt++) {
      present = (await existing(redis, keys)) ?? []
      if (present.length === keys.length && present.every(Boolean)) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    missing = paths.map((_, i) => i).filter((i) => present[i] !== true)
  }
  log(`${app.contender} journal: pre-filled ${present.filter(Boolean).length} of ${paths.length} entries in ${((performance.now() - started) / 1000).toFixed(1)} s `
    + `(round sizes ${rounds.join(', ')}${missing.length > 0 ? `; ${missing.length} still missing` : ''})`)
  return { paths, presentBefore: present, prefillRounds: rounds }
}

async function journalResult(app: AppProcess, redis: RedisServer, setup: JournalSetup, result: BurstResult, returnAt: number,
  answeredAt: readonly number[]): Promise<JournalBurst> {
  const after = await existing(redis, setup.paths.map((path) => cachedKey(app.contender, path)))
  let staleAcknowledged = 0
  let staleUnacknowledged = 0
  let staleNotSent = 0
  let acknowledged = 0
  let acknowledgedInOutage = 0
  setup.paths.forEach((_, i) => {
    const status = i < result.sent ? result.statuses[i] ?? 0 : undefined
    const ok = status !== undefined && status >= 200 && status < 300
    if (ok) {
      acknowledged += 1
      if ((answeredAt[i] ?? Infinity) < returnAt) acknowledgedInOutage += 1
    }
    const stale = after !== null && setup.presentBefore[i] === true && after[i] === true
    if (!stale) return
    if (ok) staleAcknowledged += 1
    else if (status !== undefined) staleUnacknowledged += 1
    else staleNotSent += 1
  })
  const replayed = [...app.output].reverse().map((line) => /Redis is back.*replayed (\d+) write\(s\)/.exec(line)).find((m) => m !== null)
  return {
    keys: setup.paths.length,
    prefillRounds: setup.prefillRounds,
    presentBefore: setup.presentBefore.filter(Boolean).length,
    sent: result.sent,
    notSent: result.notSent,
    acknowledged,
    failed: result.sent - acknowledged,
    acknowledgedInOutage,
    startedAt: result.startedAt,
    endedAt: result.endedAt,
    staleAcknowledged: after === null ? null : staleAcknowledged,
    staleUnacknowledged: after === null ? null : staleUnacknowledged,
    staleNotSent: after === null ? null : staleNotSent,
    journalFullLogged: app.output.some((line) => line.includes('ERR_KIT_JOURNAL_FULL')),
    replayedLogged: replayed ? Number(replayed[1]) : null,
  }
}

async function runOnce(contender: Contender, scenario: Exclude<Scenario, FailoverScenario>): Promise<RunResult> {
  const redis = await startRedis()
  let proxy: ProxyProcess | undefined
  let app: AppProcess | undefined
  try {
    const redisLatency = new Map<string, number>()
    await monitorLatency(redis)
    if (scenario === 'slow') proxy = await startProxy(redis.port)
    app = await startApp(contender, proxy ? proxy.url : redis.url)
    log(`${contender} ${scenario}: redis-server pid ${redis.pid ?? '?'} on ${redis.port}${proxy ? ` behind proxy ${proxy.port}` : ''}, server pid ${app.child.pid ?? '?'} on ${app.port}`)
    const cookie = await login(app.port, 'chaos')
    for (let i = 0; i < TARGETS; i++) {
      const warm = await getJson(app.port, targetPath(i), 5000, undefined, cookie)
      if (warm.status !== 200) throw new Error(`warm-up ${targetPath(i)} answered ${warm.status}`)
    }
    const setup = scenario === 'journal' ? await prefill(app, redis) : undefined
    // The load starts with the server on Redis (a setup burst can leave the kit degraded for a moment).
    if (!(await onRedis(app, 30_000))) throw new Error(`${contender} ${scenario}: not on Redis before the load`)
    const setupEndedAt = performance.now()
    // The kit's own counters at the load start, and its state polled from /metrics (the peer has none).
    const metricsWatch: KitMetricsWatch | undefined = contender === 'kit' ? await watchKitMetrics(app.port, 1000) : undefined
    const poller = pollHealth(app.port, contender === 'kit' ? '/health' : '/health/redis', POLL_INTERVAL_MS,
      contender === 'kit' ? 1000 : PEER_POLL_TIMEOUT_MS)
    const loadAverage = loadavg()[0] ?? 0
    const load = startLoad({ port: app.port, cookie, connections: CONNECTIONS, durationS: DURATION_S, timeoutS: TIMEOUT_S, targets: TARGETS })
    const jobStream: JobStream | undefined = JOB_RATE > 0 ? startJobStream({ port: app.port, perSecond: JOB_RATE, timeoutMs: TIMEOUT_S * 1000 }) : undefined
    const returnDue = load.t0 + (DURATION_S * 2000) / 3
    let faultAt = Infinity
    let returnAt = Infinity
    let burstRun: Promise<BurstResult> | undefined
    const burstAnsweredAt: number[] = []
    try {
      await sleepUntil(load.t0 + (DURATION_S * 1000) / 3)
      // A kill loses Redis' latency history, and a SIGSTOP would be timed as a stall of whatever it interrupted: read it first.
      if (scenario !== 'slow') await readLatency(redis, redisLatency)
      faultAt = performance.now()
      if (scenario === 'kill' || scenario === 'journal') await redis.kill()
      else if (scenario === 'stop') redis.pause()
      else await proxy?.setLatency(SLOW_MS)
      const what = { kill: 'killed (-9)', stop: 'stopped (SIGSTOP)', slow: `slowed (+${SLOW_MS} ms per reply)`, journal: 'killed (-9)' }[scenario]
      log(`${contender} ${scenario}: Redis ${what} at ${((faultAt - load.t0) / 1000).toFixed(2)} s`)
      if (setup) {
        const port = app.port
        burstRun = burst({
          port, method: 'DELETE', paths: setup.paths, concurrency: BURST_CONCURRENCY, timeoutMs: TIMEOUT_S * 1000, stopSendingAt: returnDue,
          onSettled: (index) => { burstAnsweredAt[index] = performance.now() },
        })
        burstRun.catch(() => undefined)
      }
      await sleepUntil(returnDue)
      if (scenario === 'kill' || scenario === 'journal') await restartRedis(redis) // resolves when the new process answers PING
      else if (scenario === 'stop') redis.resume()
      else await proxy?.setLatency(0)
      returnAt = performance.now()
      if (scenario === 'kill' || scenario === 'journal') await monitorLatency(redis)
      if (scenario === 'stop') await resetLatency(redis)
      log(`${contender} ${scenario}: Redis ${scenario === 'slow' ? 'at full speed' : 'answering'} again at ${((returnAt - load.t0) / 1000).toFixed(2)} s`)
    } catch (error) {
      await stopRun({ load, poller, metricsWatch, jobStream })
      throw error
    }
    const { samples, inFlightAtEnd, inFlightByRoute } = await load.done
    const jobRequests = await jobStream?.stop()
    const endAt = Math.min(performance.now(), load.t0 + DURATION_S * 1000)
    const burstResult = burstRun ? await burstRun : undefined
    if (burstResult) {
      const ok = burstResult.statuses.filter((status) => status >= 200 && status < 300).length
      log(`${contender} ${scenario}: DELETE burst sent ${burstResult.sent} (${ok} answered 2xx) in ${((burstResult.endedAt - burstResult.startedAt) / 1000).toFixed(2)} s`)
    }
    const back = await waitBackOnRedis(app, poller, returnAt, scenario === 'journal' ? JOURNAL_BACK_DEADLINE_MS : BACK_DEADLINE_MS)
    const polls = await poller.stop()
    await metricsWatch?.stopPolling()
    await readLatency(redis, redisLatency)
    let meAfter = 0
    try { meAfter = (await getJson(app.port, '/me', 15_000, undefined, cookie)).status } catch { /* 0 = no answer */ }
    const visitsInRedis = await readVisits(redis)
    const journal = setup && burstResult ? await journalResult(app, redis, setup, burstResult, returnAt, burstAnsweredAt) : undefined
    let jobs: JobStreamResult | undefined
    if (jobRequests) {
      jobs = await countJobs({
        requests: jobRequests, perSecond: JOB_RATE, faultAt, returnAt, deadlineMs: JOB_WAIT_MS,
        keyOf: (id) => jobKey(contender, id), withRedis: (use) => withRedis(redis, use),
      })
      log(`${contender} ${scenario}: job stream sent ${jobs.sent}, ${jobs.acknowledged} acknowledged, ${jobs.processed} processed, `
        + `${jobs.lost} lost, ${jobs.ranTwice} ran twice (waited ${(jobs.waitedMs / 1000).toFixed(1)} s)`)
    }
    // After the job count, so the jobs that finished while it waited are counted too.
    const kitMetrics: KitMetricsRun | undefined = metricsWatch ? await metricsWatch.finish(app.lines) : undefined
    const failures = samples.filter(isFailure).length
    log(`${contender} ${scenario}: ${samples.length} requests, ${failures} failed${back ? '' : ', NOT back on Redis in time'}`)
    if (process.env.CHAOS_LOG === '1') log(`${contender} ${scenario} server output:\n${app.output.join('\n')}`)
    return {
      contender, scenario, loadAverage, inFlightAtEnd, t0: load.t0, faultAt, returnAt, endAt, timeoutMs: TIMEOUT_S * 1000, samples, polls, meAfter,
      visits: visitCounts(samples, inFlightByRoute, visitsInRedis, contender === 'kit' ? inDoubt(app, 'visitor_count') : undefined),
      unhandledRejections: app.output.filter((line) => line.includes('unhandledRejection')).length,
      stateChanges: contender === 'kit' ? stateChanges(app) : [],
      eld: [...app.eld],
      ...(scenario === 'slow' ? { slowMs: SLOW_MS } : {}),
      ...(journal ? { journal } : {}),
      ...(jobs ? { jobs } : {}),
      backTimedOut: !back,
      setupEndedAt,
      redisLatency: Object.fromEntries(redisLatency),
      ...(kitMetrics ? { kitMetrics } : {}),
    }
  } finally {
    if (app) await stopApp(app)
    if (proxy) await stopProxy(proxy)
    await stopRedis(redis)
  }
}

/** Which code ran: the commit, and whether lib/ or examples/ differ from it (others edit them meanwhile). */
function sourceState(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: join(__dirname, '..'), encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'examples'], { cwd: join(__dirname, '..'), encoding: 'utf8' }).trim()
    return `commit ${commit}, lib/ and examples/ ${dirty === '' ? 'as committed' : `with uncommitted changes (${dirty.split('\n').length} files)`}`
  } catch {
    return 'unknown (no git)'
  }
}

async function main(): Promise<void> {
  let source = sourceState()
  log(`code: ${source}`)
  log(`${CONTENDERS.join(' + ')} × ${SCENARIOS.join(' + ')}, ${DURATION_S} s each, ${CONNECTIONS} connections, timeout ${TIMEOUT_S} s`)
  const runs: RunResult[] = []
  const failoverSettings = {
    durationS: DURATION_S, connections: CONNECTIONS, timeoutS: TIMEOUT_S, targets: TARGETS, peerPollTimeoutMs: PEER_POLL_TIMEOUT_MS,
    redisLatencyThresholdMs: REDIS_LATENCY_THRESHOLD_MS, jobRate: JOB_RATE, jobWaitMs: JOB_WAIT_MS, log,
  }
  for (const scenario of SCENARIOS) {
    for (const contender of CONTENDERS) {
      runs.push(isFailover(scenario) ? await runFailover(contender, scenario, failoverSettings) : await runOnce(contender, scenario))
    }
  }
  const sourceAtEnd = sourceState()
  if (sourceAtEnd !== source) source = `${source} at the start, ${sourceAtEnd} at the end`
  const context = {
    durationS: DURATION_S, connections: CONNECTIONS, timeoutS: TIMEOUT_S, targets: TARGETS,
    pollIntervalMs: POLL_INTERVAL_MS, peerPollTimeoutMs: PEER_POLL_TIMEOUT_MS, svgName: 'chaos.svg', cpus: cpus().length,
    slowMs: SLOW_MS, journalKeys: JOURNAL_KEYS, burstConcurrency: BURST_CONCURRENCY, journalMaxEntries: JOURNAL_MAX_ENTRIES, source, redisLatencyThresholdMs: REDIS_LATENCY_THRESHOLD_MS,
    jobRate: JOB_RATE, jobMs: SCAN_JOB_MS, jobWaitS: JOB_WAIT_MS / 1000,
  }
  // A–D and E–F are two parts of chaos.md, each with its own plot; a part this run did not cover is kept.
  const singleRuns = runs.filter((run) => !isFailover(run.scenario))
  const failoverRuns = runs.filter((run) => isFailover(run.scenario))
  const single = singleRuns.length > 0 ? renderReport(singleRuns, context) : undefined
  const failover = failoverRuns.length > 0 ? renderFailoverReport(failoverRuns, { ...context, svgName: 'chaos-topologies.svg' }) : undefined
  mkdirSync(OUT_DIR, { recursive: true })
  const reportPath = join(OUT_DIR, 'chaos.md')
  writeFileSync(reportPath, mergeReport(existsSync(reportPath) ? readFileSync(reportPath, 'utf8') : undefined, single, failover))
  const written = [reportPath]
  if (single) {
    writeFileSync(join(OUT_DIR, 'chaos.svg'), renderSvg(singleRuns, DURATION_S))
    written.push(join(OUT_DIR, 'chaos.svg'))
  }
  if (failover) {
    writeFileSync(join(OUT_DIR, 'chaos-topologies.svg'), renderSvg(failoverRuns, DURATION_S, FAILOVER_PLOT_LABELS))
    written.push(join(OUT_DIR, 'chaos-topologies.svg'))
  }
  console.log([single, failover].filter(Boolean).join('\n'))
  log(`wrote ${written.join(', ')}`)
}

process.on('exit', killAllNow)

let interrupted = false
process.on('SIGINT', () => {
  if (interrupted) return
  interrupted = true
  log('interrupted: stopping the servers and redis-servers this run started')
  void Promise.allSettled([cleanup(), stopTopologies()]).finally(() => process.exit(130))
})

main()
  .catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => Promise.allSettled([cleanup(), stopTopologies()]))
