/**
 * The job queue: jobs/s through the kit vs raw BullMQ on the same redis-server (add + process,
 * worker concurrency 8, a processor that returns at once), each round in its own child process,
 * alternating, with the child's CPU per job; then add() latency while Redis hangs (SIGSTOP), and a
 * job stream through kill -9 and restart: acknowledged adds vs jobs processed.
 * Run: `node --import tsx bench/jobs.ts`.
 *
 * Env: BENCH_JOBS (measured jobs per round, 5000), BENCH_WARMUP (jobs each round runs first,
 * unmeasured, 2000), BENCH_ROUNDS (rounds per contender, 10), BENCH_JOB_IDS=0 (leave out the third
 * contender: raw BullMQ given a random UUID jobId per add, as the kit sends, which shows what the id
 * alone costs), BENCH_ONLY=throughput (skip the outage parts, print without writing results),
 * BENCH_KIT (path of the kit's build to load; default dist/cjs).
 */
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { createKit as CreateKit } from '../lib/index.js'
import { RedisServer } from '../test/helpers/redis-server.js'

const JOBS = Number(process.env.BENCH_JOBS ?? 5000)
/** Jobs each round runs first, unmeasured: both sides measured with their code compiled, not while V8 still warms up. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10)
const WITH_IDS = process.env.BENCH_JOB_IDS !== '0'
/** Exit code of a kit round that left Redis (the machine was so loaded that Redis answered later than commandTimeoutMs). */
const LEFT_REDIS = 3
const MAX_RETRIES = 3
const ONLY_THROUGHPUT = process.env.BENCH_ONLY === 'throughput'
const CONCURRENCY = 8
/** Producers adding at once (each awaits its add before the next). */
const PRODUCERS = 16
/** Both keep finished jobs the same way (the kit's default). */
const KEEP = { removeOnComplete: { age: 86_400, count: 1000 }, removeOnFail: { age: 604_800, count: 5000 } }
const COMMAND_TIMEOUT_MS = 300

/**
 * The kit as users run it: the compiled build (`npm run bench` builds first), not lib/ through tsx.
 * BENCH_KIT points at another build (a copy no concurrent `npm run build` deletes mid-run).
 */
function builtKit(): typeof CreateKit {
  return (require(process.env.BENCH_KIT ?? '../dist/cjs/index.js') as { createKit: typeof CreateKit }).createKit
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

interface RoundResult {
  jobsPerSecond: number
  /** This process's CPU (user + system) from the first add to the last completion, per job. */
  cpuMicrosPerJob: number
}

/**
 * Adds `count` jobs from PRODUCERS loops while the worker runs (each completion calls `completed.tick`);
 * jobs/s from the first add to the last completion.
 */
async function produce(count: number, add: (i: number) => Promise<unknown>, completed: { tick: () => void }): Promise<RoundResult> {
  let left = count
  let finish = (): void => {}
  const done = new Promise<void>((resolve) => { finish = resolve })
  completed.tick = () => { if (--left === 0) finish() }
  const started = performance.now()
  const cpu = process.cpuUsage()
  let next = 0
  await Promise.all(Array.from({ length: PRODUCERS }, async () => {
    while (next < count) await add(next++)
  }))
  await done
  const used = process.cpuUsage(cpu)
  return { jobsPerSecond: count / ((performance.now() - started) / 1000), cpuMicrosPerJob: (used.user + used.system) / count }
}

/** A warm-up of WARMUP jobs, then the measured JOBS. */
async function warmThenMeasure(add: (i: number) => Promise<unknown>, completed: { tick: () => void }): Promise<RoundResult> {
  if (WARMUP > 0) await produce(WARMUP, add, completed)
  return produce(JOBS, add, completed)
}

type Mode = 'raw' | 'kit' | 'raw-ids'

async function round(mode: Mode, port: number, name: string): Promise<void> {
  const completed = { tick: (): void => {} }
  let result: RoundResult
  if (mode === 'kit') {
    const kit = builtKit()({ url: `redis://127.0.0.1:${port}`, logger: false, env: {} })
    await kit.ready()
    const queue = kit.queue(name)
    const worker = kit.worker(name, () => 1, { concurrency: CONCURRENCY })
    worker.on('completed', () => completed.tick())
    await worker.bullmq?.waitUntilReady()
    let left = false
    kit.on('degraded', () => { left = true })
    result = await warmThenMeasure((i) => queue.add('t', { i }).catch((error: unknown) => { left = true; throw error }), completed).catch((error: unknown) => {
      if (left) process.exit(LEFT_REDIS) // a throughput round is only valid on Redis: the pair is run again
      throw error
    })
    await kit.close()
    if (left) process.exit(LEFT_REDIS)
  } else {
    // BullMQ as its docs set it up: a shared client for the producer, one with maxRetriesPerRequest: null for the worker.
    const producer = new Redis({ port, host: '127.0.0.1' })
    const consumer = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null })
    const queue = new Queue(name, { connection: producer, prefix: 'job', defaultJobOptions: KEEP })
    const worker = new Worker(name, async () => 1, { connection: consumer, prefix: 'job', concurrency: CONCURRENCY })
    worker.on('completed', () => completed.tick())
    await worker.waitUntilReady()
    result = await warmThenMeasure(mode === 'raw-ids' ? (i) => queue.add('t', { i }, { jobId: randomUUID() }) : (i) => queue.add('t', { i }), completed)
    await worker.close()
    await queue.close()
    producer.disconnect()
    consumer.disconnect()
  }
  process.stdout.write(JSON.stringify(result))
}

function runRound(mode: Mode, port: number, name: string): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'round', mode, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as RoundResult)
      else reject(Object.assign(new Error(`${mode} round exited ${code}${code === LEFT_REDIS ? ' (the kit left Redis: no answer within commandTimeoutMs)' : ''}`), { leftRedis: code === LEFT_REDIS }))
    })
  })
}

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / values.length
const median = (values: readonly number[]): number => percentile([...values].sort((a, b) => a - b), 0.5)
const spread = (values: readonly number[], digits = 0): string => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`

/**
 * Rounds alternate (raw, kit, … then the reverse order), one child process each, all on one
 * redis-server; each pair of neighbouring raw and kit rounds gives a ratio, so a burst of load from
 * other work on the machine lowers both sides of a pair rather than one contender's mean.
 */
async function throughput(): Promise<string[]> {
  const modes: Mode[] = WITH_IDS ? ['raw', 'kit', 'raw-ids'] : ['raw', 'kit']
  const server = await RedisServer.start()
  const results: Record<Mode, RoundResult[]> = { raw: [], kit: [], 'raw-ids': [] }
  const started = performance.now()
  let retried = 0
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const round: Partial<Record<Mode, RoundResult>> = {}
      for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
        try {
          round[mode] = await runRound(mode, server.port, `${mode}${r}-${retried}`)
        } catch (error) {
          if (!(error as { leftRedis?: boolean }).leftRedis || retried >= MAX_RETRIES) throw error
          retried++
          process.stderr.write(`[jobs] round ${r + 1}: ${(error as Error).message}; running the round again\n`)
          break
        }
      }
      if (modes.some((mode) => round[mode] === undefined)) { r--; continue }
      for (const mode of modes) results[mode].push(round[mode] as RoundResult)
      process.stderr.write(`[jobs] round ${r + 1}/${ROUNDS}: ${modes.map((m) => `${m} ${results[m].at(-1)?.jobsPerSecond.toFixed(0)}`).join(', ')}\n`)
    }
  } finally {
    await server.stop()
  }
  const rate = (mode: Mode): number[] => results[mode].map((x) => x.jobsPerSecond)
  const cpu = (mode: Mode): number[] => results[mode].map((x) => x.cpuMicrosPerJob)
  const pairs = (mode: Mode): number[] => rate(mode).map((value, i) => value / (rate('raw')[i] as number))
  const names: Record<Mode, string> = {
    raw: 'raw BullMQ (Queue + Worker, ioredis defaults, BullMQ\'s own ids)',
    kit: 'kit.queue() + kit.worker()',
    'raw-ids': 'raw BullMQ, a random UUID `jobId` per add (what the kit sends)',
  }
  const row = (mode: Mode): string => `| ${names[mode]} | ${mean(rate(mode)).toFixed(0)} | ${median(rate(mode)).toFixed(0)} | ${spread(rate(mode))} | `
    + `${(mean(rate(mode)) / mean(rate('raw'))).toFixed(2)}× | ${mode === 'raw' ? '1.00×' : `${median(pairs(mode)).toFixed(2)}× (${spread(pairs(mode), 2)})`} | `
    + `${median(cpu(mode)).toFixed(0)} | ${(median(cpu('raw')) / median(cpu(mode))).toFixed(2)}× |`
  return [
    `### Jobs/s: kit vs raw BullMQ (${JOBS} jobs per round after ${WARMUP} unmeasured, ${PRODUCERS} producers, worker concurrency ${CONCURRENCY}, `
    + `processor returns at once, ${ROUNDS} rounds each, alternating, ${((performance.now() - started) / 1000).toFixed(0)} s)`,
    '',
    '| Contender | jobs/s (mean) | jobs/s (median) | jobs/s (min–max) | Ratio vs raw (means) | Ratio vs raw, median of pairs (min–max) | CPU µs/job (median) | CPU: raw ÷ this |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...modes.map(row),
    '',
    `Both keep finished jobs the same way (\`removeOnComplete\` ${JSON.stringify(KEEP.removeOnComplete)}, \`removeOnFail\` ${JSON.stringify(KEEP.removeOnFail)}: the kit's defaults). `
    + 'A pair is a raw round and the kit round next to it. CPU is the bench process\'s own (producers and worker), from the first add to the last completion; '
    + 'redis-server\'s is not in it. Every round: ' + modes.map((m) => `${m} ${rate(m).map((v) => v.toFixed(0)).join(' / ')}`).join('; ') + '. '
    + `Rounds run again because the kit left Redis (a reply later than commandTimeoutMs on this loaded machine; the kit then holds jobs, which is not what this measures): ${retried}.`,
    '',
  ]
}

/** add() while Redis is hung: every call must answer (held) within commandTimeoutMs. */
async function hungLatency(): Promise<{ calls: number; held: number; p50: number; p99: number; max: number; rawAnswered: number }> {
  const server = await RedisServer.start()
  const kit = builtKit()({ url: server.url, logger: false, env: {} })
  await kit.ready()
  const queue = kit.queue('hung', { maxHeld: 100_000 })
  const raw = new Redis({ port: server.port, host: '127.0.0.1' })
  const rawQueue = new Queue('hung-raw', { connection: raw, prefix: 'job' })
  await rawQueue.waitUntilReady()
  server.pause()
  let rawAnswered = 0
  const rawAdds = Array.from({ length: 8 }, (_, i) => rawQueue.add('t', { i }).then(() => { rawAnswered++ }, () => { rawAnswered++ }))
  const latencies: number[] = []
  let held = 0
  await Promise.all(Array.from({ length: 8 }, async (_, loop) => {
    for (let i = 0; i < 250; i++) {
      const started = performance.now()
      const info = await queue.add('t', { loop, i })
      latencies.push(performance.now() - started)
      if (info.state === 'held') held++
    }
  }))
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const answeredWhileHung = rawAnswered
  server.resume()
  await Promise.all(rawAdds)
  await kit.close()
  await rawQueue.close()
  raw.disconnect()
  await server.stop()
  latencies.sort((a, b) => a - b)
  return { calls: latencies.length, held, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) ?? 0, rawAnswered: answeredWhileHung }
}

/** A steady stream of adds while Redis is killed and restarted (append-only file, as in production). */
async function streamThroughKill(): Promise<{ acknowledged: number; processed: number; twice: number; lost: number; refused: number }> {
  const server = await RedisServer.start({ persist: true })
  const kit = builtKit()({ url: server.url, logger: false, env: {} })
  await kit.ready()
  const queue = kit.queue('stream', { maxHeld: 100_000, removeOnComplete: false })
  const runs = new Map<string, number>()
  // Short locks, so a job that was running when Redis died is taken over (and counted) within the run.
  kit.worker('stream', (job: { id: string }) => { runs.set(job.id, (runs.get(job.id) ?? 0) + 1) }, { concurrency: CONCURRENCY, lockDuration: 2000, stalledInterval: 1000 })
  const acknowledged: string[] = []
  let refused = 0
  let running = true
  const producer = (async () => {
    for (let i = 0; running; i++) {
      try {
        acknowledged.push((await queue.add('t', { i }, i % 2 === 0 ? { jobId: `s-${i}` } : undefined)).id)
      } catch {
        refused++
      }
      await new Promise((resolve) => setTimeout(resolve, 2)) // ~400 adds/s
    }
  })()
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
  await sleep(2000)
  await server.kill()
  await sleep(2000)
  await server.start()
  await sleep(3000)
  running = false
  await producer
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline && acknowledged.some((id) => !runs.has(id))) await sleep(100)
  await sleep(4000) // a job running at the kill is run again once its lock expired: count those too
  await kit.close()
  await server.stop()
  const lost = acknowledged.filter((id) => !runs.has(id)).length
  const twice = [...runs.values()].filter((n) => n > 1).length
  return { acknowledged: acknowledged.length, processed: runs.size, twice, lost, refused }
}

async function main(): Promise<void> {
  const speed = await throughput()
  if (ONLY_THROUGHPUT) {
    console.log(speed.join('\n'))
    return
  }
  const hung = await hungLatency()
  const stream = await streamThroughKill()
  const table = [
    ...speed,
    `### add() while Redis hangs (SIGSTOP; 8 loops × 250 adds; commandTimeoutMs ${COMMAND_TIMEOUT_MS})`,
    '',
    '| Calls | Answered held | p50 ms | p99 ms | max ms | raw BullMQ adds answered within 2 s |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${hung.calls} | ${hung.held} | ${hung.p50.toFixed(3)} | ${hung.p99.toFixed(1)} | ${hung.max.toFixed(1)} | ${hung.rawAnswered} of 8 |`,
    '',
    '### A job stream (about 400 adds/s) through kill -9 and a restart 2 s later (append-only Redis)',
    '',
    '| Acknowledged adds | Refused | Processed (distinct) | Lost | Ran twice |',
    '| ---: | ---: | ---: | ---: | ---: |',
    `| ${stream.acknowledged} | ${stream.refused} | ${stream.processed} | ${stream.lost} | ${stream.twice} |`,
    '',
    '"Ran twice" can only be a job that was running when Redis died: its result never reached Redis, so BullMQ',
    'runs it again once its lock expired (at-least-once, as for any BullMQ worker). Adds are never doubled.',
    '',
  ].join('\n')
  console.log(table)
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'jobs.md'), table)
}

if (process.argv[2] === 'round') {
  round((process.argv[3] ?? 'kit') as Mode, Number(process.argv[4]), process.argv[5] ?? 'bench').catch((error) => { console.error(error); process.exit(1) })
} else {
  main().catch((error) => { console.error(error); process.exit(1) })
}

