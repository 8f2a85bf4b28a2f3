/**
 * The job queue: jobs/s through the kit vs raw BullMQ on the same redis-server (add + process,
 * worker concurrency 8, a processor that returns at once), each round in its own child process,
 * alternating; then add() latency while Redis hangs (SIGSTOP), and a job stream through kill -9
 * and restart: acknowledged adds vs jobs processed. Run: `node --import tsx bench/jobs.ts`.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { createKit as CreateKit } from '../lib/index.js'
import { RedisServer } from '../test/helpers/redis-server.js'

const JOBS = Number(process.env.BENCH_JOBS ?? 5000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const CONCURRENCY = 8
/** Producers adding at once (each awaits its add before the next). */
const PRODUCERS = 16
/** Both keep finished jobs the same way (the kit's default). */
const KEEP = { removeOnComplete: { age: 86_400, count: 1000 }, removeOnFail: { age: 604_800, count: 5000 } }
const COMMAND_TIMEOUT_MS = 300

/** The kit as users run it: the compiled build (`npm run bench` builds first), not lib/ through tsx. */
function builtKit(): typeof CreateKit {
  return (require('../dist/cjs/index.js') as { createKit: typeof CreateKit }).createKit
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

/** Adds JOBS jobs from PRODUCERS loops while the worker runs; resolves jobs/s from first add to last completion. */
async function produce(add: (i: number) => Promise<unknown>, done: Promise<void>): Promise<number> {
  const started = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: PRODUCERS }, async () => {
    while (next < JOBS) await add(next++)
  }))
  await done
  return JOBS / ((performance.now() - started) / 1000)
}

function countdown(): { tick: () => void; done: Promise<void> } {
  let left = JOBS
  let finish = (): void => {}
  const done = new Promise<void>((resolve) => { finish = resolve })
  return { tick: () => { if (--left === 0) finish() }, done }
}

async function round(mode: string, port: number, name: string): Promise<void> {
  const { tick, done } = countdown()
  let jobsPerSecond: number
  if (mode === 'kit') {
    const kit = builtKit()({ url: `redis://127.0.0.1:${port}`, logger: false, env: {} })
    await kit.ready()
    const queue = kit.queue(name)
    const worker = kit.worker(name, () => 1, { concurrency: CONCURRENCY })
    worker.on('completed', tick)
    await worker.bullmq?.waitUntilReady()
    jobsPerSecond = await produce((i) => queue.add('t', { i }), done)
    if (kit.state !== 'ready') throw new Error('kit left Redis during the run')
    await kit.close()
  } else {
    // BullMQ as its docs set it up: a shared client for the producer, one with maxRetriesPerRequest: null for the worker.
    const producer = new Redis({ port, host: '127.0.0.1' })
    const consumer = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null })
    const queue = new Queue(name, { connection: producer, prefix: 'job', defaultJobOptions: KEEP })
    const worker = new Worker(name, async () => 1, { connection: consumer, prefix: 'job', concurrency: CONCURRENCY })
    worker.on('completed', tick)
    await worker.waitUntilReady()
    jobsPerSecond = await produce((i) => queue.add('t', { i }), done)
    await worker.close()
    await queue.close()
    producer.disconnect()
    consumer.disconnect()
  }
  process.stdout.write(JSON.stringify({ jobsPerSecond }))
}

function runRound(mode: string, port: number, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'round', mode, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('exit', (code) => code === 0 ? resolve((JSON.parse(out) as { jobsPerSecond: number }).jobsPerSecond) : reject(new Error(`${mode} round exited ${code}`)))
  })
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
  const server = await RedisServer.start()
  const totals = { kit: [] as number[], raw: [] as number[] }
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of r % 2 === 0 ? ['raw', 'kit'] as const : ['kit', 'raw'] as const) {
        totals[mode].push(await runRound(mode, server.port, `${mode}${r}`))
      }
    }
  } finally {
    await server.stop()
  }
  const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length
  const kit = mean(totals.kit)
  const raw = mean(totals.raw)
  const hung = await hungLatency()
  const stream = await streamThroughKill()
  const table = [
    `### Jobs/s: kit vs raw BullMQ (${JOBS} jobs per round, ${PRODUCERS} producers, worker concurrency ${CONCURRENCY}, processor returns at once, ${ROUNDS} rounds each, alternating)`,
    '',
    '| Contender | jobs/s (add + process) | Ratio vs raw BullMQ |',
    '| --- | ---: | ---: |',
    `| raw BullMQ (Queue + Worker, ioredis defaults) | ${raw.toFixed(0)} | 1.00× |`,
    `| kit.queue() + kit.worker() | ${kit.toFixed(0)} | ${(kit / raw).toFixed(2)}× |`,
    '',
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
  round(process.argv[3] ?? 'kit', Number(process.argv[4]), process.argv[5] ?? 'bench').catch((error) => { console.error(error); process.exit(1) })
} else {
  main().catch((error) => { console.error(error); process.exit(1) })
}

