/**
 * kit.client vs raw ioredis on the same redis-server, each measured in its own child process,
 * alternating rounds so both see the same machine; then the latency of client calls in the
 * first second after Redis is killed. Run: `node --import tsx bench/client.ts`.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { createKit as CreateKit } from '../lib/index.js'
import { RedisServer } from '../test/helpers/redis-server.js'

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const CONCURRENCY = 32
const VALUE = JSON.stringify({ user: 'ada', roles: ['admin', 'dev'], visits: 42, note: 'x'.repeat(200) })

interface Ops {
  set(key: string): Promise<unknown>
  get(key: string): Promise<unknown>
}

/** Runs CONCURRENCY loops of set+get for ROUND_MS and returns operations per second. */
async function measure(ops: Ops): Promise<number> {
  const deadline = performance.now() + ROUND_MS
  let count = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
    for (let i = 0; performance.now() < deadline; i++) {
      const key = `bench:${worker}:${i % 100}`
      await ops.set(key)
      await ops.get(key)
      count += 2
    }
  }))
  return count / (ROUND_MS / 1000)
}

/** The kit as users run it: the compiled build (`npm run bench` builds first), not lib/ through tsx. */
function builtKit(): typeof CreateKit {
  return (require('../dist/cjs/index.js') as { createKit: typeof CreateKit }).createKit
}

async function worker(mode: string, port: number): Promise<void> {
  const createKit = builtKit()
  if (mode === 'kit') {
    const kit = createKit({ url: `redis://127.0.0.1:${port}`, logger: false, env: {} })
    await kit.ready()
    if (kit.state !== 'ready') throw new Error(`kit is ${kit.state}`)
    const value = JSON.parse(VALUE) as Record<string, never>
    const opsPerSecond = await measure({ set: (k) => kit.client.set(k, value, 60), get: (k) => kit.client.get(k) })
    if (kit.state !== 'ready') throw new Error('kit left Redis during the run')
    await kit.close()
    process.stdout.write(JSON.stringify({ opsPerSecond }))
  } else {
    // The same work done by hand: JSON encode/decode and a TTL, over a plain ioredis client.
    const redis = new Redis({ port, host: '127.0.0.1' })
    const value = JSON.parse(VALUE) as Record<string, never>
    const opsPerSecond = await measure({
      set: (k) => redis.set(k, JSON.stringify(value), 'EX', 60),
      get: async (k) => { const raw = await redis.get(k); return raw === null ? null : JSON.parse(raw) },
    })
    redis.disconnect()
    process.stdout.write(JSON.stringify({ opsPerSecond }))
  }
}

/** In this process: a kit under load, Redis killed, the latency of every call in the next second. */
async function killedLatency(): Promise<{ calls: number; failures: number; p50: number; p99: number; max: number }> {
  const createKit = builtKit()
  const server = await RedisServer.start()
  const kit = createKit({ url: server.url, logger: false, env: {} })
  await kit.ready()
  const latencies: number[] = []
  let failures = 0
  let killedAt = Infinity
  let running = true
  const loops = Array.from({ length: 8 }, async (_, worker) => {
    for (let i = 0; running; i++) {
      const started = performance.now()
      try {
        await kit.client.increment(`killed:${worker}`)
      } catch {
        failures++
      }
      if (started >= killedAt) latencies.push(performance.now() - started)
      await new Promise((r) => setImmediate(r))
    }
  })
  await new Promise((r) => setTimeout(r, 300))
  killedAt = performance.now()
  await server.kill()
  await new Promise((r) => setTimeout(r, 1000))
  running = false
  await Promise.all(loops)
  await kit.close()
  await server.stop()
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return { calls: latencies.length, failures, p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 }
}

function runWorker(mode: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'worker', mode, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.on('exit', (code) => code === 0 ? resolve((JSON.parse(out) as { opsPerSecond: number }).opsPerSecond) : reject(new Error(`${mode} worker exited ${code}`)))
  })
}

async function main(): Promise<void> {
  const server = await RedisServer.start()
  const totals = { kit: 0, raw: 0 }
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of round % 2 === 0 ? ['raw', 'kit'] as const : ['kit', 'raw'] as const) {
        totals[mode] += await runWorker(mode, server.port)
      }
    }
  } finally {
    await server.stop()
  }
  const kit = totals.kit / ROUNDS
  const raw = totals.raw / ROUNDS
  const killed = await killedLatency()
  const table = [
    `### kit.client vs raw ioredis (set+get, ${CONCURRENCY} concurrent loops, ${ROUNDS}×${ROUND_MS} ms rounds each, alternating)`,
    '',
    '| Contender | ops/s | Ratio vs raw ioredis |',
    '| --- | ---: | ---: |',
    `| raw ioredis (JSON by hand, SET EX + GET) | ${raw.toFixed(0)} | 1.00× |`,
    `| kit.client (set + get) | ${kit.toFixed(0)} | ${(kit / raw).toFixed(2)}× |`,
    '',
    '### kit.client in the first second after Redis is killed (kill -9 under load, 8 loops)',
    '',
    '| Calls | Failed | p50 ms | p99 ms | max ms |',
    '| ---: | ---: | ---: | ---: | ---: |',
    `| ${killed.calls} | ${killed.failures} | ${killed.p50.toFixed(3)} | ${killed.p99.toFixed(3)} | ${killed.max.toFixed(1)} |`,
    '',
  ].join('\n')
  console.log(table)
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', 'client.md'), table)
}

if (process.argv[2] === 'worker') {
  worker(process.argv[3] ?? 'kit', Number(process.argv[4])).catch((error) => { console.error(error); process.exit(1) })
} else {
  main().catch((error) => { console.error(error); process.exit(1) })
}
