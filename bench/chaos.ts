/**
 * Chaos benchmark: the example server vs the same routes on the raw peer stack, each under
 * autocannon load while its own redis-server is killed (A: kill -9, restart on the same port) or
 * hung (B: SIGSTOP, SIGCONT). Every response is recorded; the report splits them into
 * before / outage / after and the plot shows latency and throughput over time.
 *
 *   npm run bench:chaos                      # 4 runs of 30 s, writes bench/results/chaos.{md,svg}
 *   CHAOS_SMOKE=1 npm run bench:chaos        # 4 runs of 6 s, writes to a temp directory
 *
 * Env: CHAOS_SECONDS (30), CHAOS_CONNECTIONS (10), CHAOS_TIMEOUT_S (min(10, seconds/3)),
 * CHAOS_ONLY (kit | peer), CHAOS_SCENARIOS (kill,stop), CHAOS_OUT (output directory), CHAOS_LOG=1
 * (print each server's output after its run).
 * The servers under test run as child processes; the load, the fault injection and the health
 * polling run here. Everything started is stopped on exit, errors and Ctrl-C included.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { RedisServer } from '../test/helpers/redis-server.js'
import { getJson, login, pollHealth, startLoad, targetPath } from './chaos/load.js'
import { renderSvg } from './chaos/plot.js'
import { cleanup, killAllNow, restartRedis, startApp, startRedis, stopApp, stopRedis, type AppProcess, type Contender } from './chaos/servers.js'
import { isFailure, renderReport, type RunResult, type Scenario } from './chaos/stats.js'

const SMOKE = process.env.CHAOS_SMOKE === '1'
const DURATION_S = Number(process.env.CHAOS_SECONDS ?? (SMOKE ? 6 : 30))
const CONNECTIONS = Number(process.env.CHAOS_CONNECTIONS ?? 10)
const TIMEOUT_S = Number(process.env.CHAOS_TIMEOUT_S ?? Math.min(10, Math.max(1, Math.floor(DURATION_S / 3))))
const TARGETS = 20
const POLL_INTERVAL_MS = 25
const PEER_POLL_TIMEOUT_MS = 1000
const OUT_DIR = process.env.CHAOS_OUT ?? (SMOKE ? join(tmpdir(), 'erk-chaos-smoke') : join(__dirname, 'results'))
const CONTENDERS: Contender[] = process.env.CHAOS_ONLY === 'kit' || process.env.CHAOS_ONLY === 'peer' ? [process.env.CHAOS_ONLY] : ['kit', 'peer']
const SCENARIOS = (process.env.CHAOS_SCENARIOS ?? 'kill,stop').split(',').filter((s): s is Scenario => s === 'kill' || s === 'stop')

const log = (line: string): void => { process.stderr.write(`[chaos] ${line}\n`) }
const sleepUntil = (time: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, time - performance.now())))

/** Reads `visitor_count` straight from Redis (null when it cannot be read). */
async function readVisits(redis: RedisServer): Promise<number | null> {
  const client = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  client.on('error', () => { /* reported as null */ })
  try {
    await client.connect()
    const value = await client.get('visitor_count')
    return value === null ? 0 : Number(value)
  } catch {
    return null
  } finally {
    client.disconnect()
  }
}

/** After the load: give the server up to 10 s to be back on Redis (kit replays its journal first). */
async function waitBackOnRedis(app: AppProcess): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    try {
      const res = app.contender === 'kit' ? await getJson(app.port, '/health', 1000) : await getJson(app.port, '/health/redis', 1000)
      const state = (res.body as { redis?: { state?: string } }).redis?.state
      if (app.contender === 'kit' ? state === 'ready' : res.status === 200) return
    } catch { /* keep polling */ }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function runOnce(contender: Contender, scenario: Scenario): Promise<RunResult> {
  const redis = await startRedis()
  let app: AppProcess | undefined
  try {
    app = await startApp(contender, redis.url)
    log(`${contender} ${scenario}: redis-server pid ${redis.pid ?? '?'} on ${redis.port}, server pid ${app.child.pid ?? '?'} on ${app.port}`)
    const cookie = await login(app.port, 'chaos')
    for (let i = 0; i < TARGETS; i++) {
      const warm = await getJson(app.port, targetPath(i), 5000, undefined, cookie)
      if (warm.status !== 200) throw new Error(`warm-up ${targetPath(i)} answered ${warm.status}`)
    }
    const poller = pollHealth(app.port, contender === 'kit' ? '/health' : '/health/redis', POLL_INTERVAL_MS,
      contender === 'kit' ? 1000 : PEER_POLL_TIMEOUT_MS)
    const loadAverage = loadavg()[0] ?? 0
    const load = startLoad({ port: app.port, cookie, connections: CONNECTIONS, durationS: DURATION_S, timeoutS: TIMEOUT_S, targets: TARGETS })
    let faultAt = Infinity
    let returnAt = Infinity
    try {
      await sleepUntil(load.t0 + (DURATION_S * 1000) / 3)
      faultAt = performance.now()
      if (scenario === 'kill') await redis.kill()
      else redis.pause()
      log(`${contender} ${scenario}: Redis ${scenario === 'kill' ? 'killed (-9)' : 'stopped (SIGSTOP)'} at ${((faultAt - load.t0) / 1000).toFixed(2)} s`)
      await sleepUntil(load.t0 + (DURATION_S * 2000) / 3)
      if (scenario === 'kill') await restartRedis(redis) // resolves when the new process answers PING
      else redis.resume()
      returnAt = performance.now()
      log(`${contender} ${scenario}: Redis answering again at ${((returnAt - load.t0) / 1000).toFixed(2)} s`)
    } catch (error) {
      load.stop()
      await poller.stop()
      throw error
    }
    const { samples, inFlightAtEnd } = await load.done
    const endAt = Math.min(performance.now(), load.t0 + DURATION_S * 1000)
    const polls = await poller.stop()
    await waitBackOnRedis(app)
    let meAfter = 0
    try { meAfter = (await getJson(app.port, '/me', 15_000, undefined, cookie)).status } catch { /* 0 = no answer */ }
    const visitsInRedis = await readVisits(redis)
    const failures = samples.filter(isFailure).length
    log(`${contender} ${scenario}: ${samples.length} requests, ${failures} failed`)
    if (process.env.CHAOS_LOG === '1') log(`${contender} ${scenario} server output:\n${app.output.join('\n')}`)
    return {
      contender, scenario, loadAverage, inFlightAtEnd, t0: load.t0, faultAt, returnAt, endAt, timeoutMs: TIMEOUT_S * 1000, samples, polls, meAfter,
      visitsAnswered: samples.filter((s) => s.route === 'visits' && !isFailure(s)).length,
      visitsInRedis,
      unhandledRejections: app.output.filter((line) => line.includes('unhandledRejection')).length,
    }
  } finally {
    if (app) await stopApp(app)
    await stopRedis(redis)
  }
}

async function main(): Promise<void> {
  log(`${CONTENDERS.join(' + ')} × ${SCENARIOS.join(' + ')}, ${DURATION_S} s each, ${CONNECTIONS} connections, timeout ${TIMEOUT_S} s`)
  const runs: RunResult[] = []
  for (const scenario of SCENARIOS) {
    for (const contender of CONTENDERS) runs.push(await runOnce(contender, scenario))
  }
  const svgName = 'chaos.svg'
  const report = renderReport(runs, {
    durationS: DURATION_S, connections: CONNECTIONS, timeoutS: TIMEOUT_S, targets: TARGETS,
    pollIntervalMs: POLL_INTERVAL_MS, peerPollTimeoutMs: PEER_POLL_TIMEOUT_MS, svgName, cpus: cpus().length,
  })
  mkdirSync(OUT_DIR, { recursive: true })
  writeFileSync(join(OUT_DIR, 'chaos.md'), report)
  writeFileSync(join(OUT_DIR, svgName), renderSvg(runs, DURATION_S))
  console.log(report)
  log(`wrote ${join(OUT_DIR, 'chaos.md')} and ${join(OUT_DIR, svgName)}`)
}

process.on('exit', killAllNow)

let interrupted = false
process.on('SIGINT', () => {
  if (interrupted) return
  interrupted = true
  log('interrupted: stopping the servers and redis-servers this run started')
  void cleanup().finally(() => process.exit(130))
})

main()
  .catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => cleanup())
