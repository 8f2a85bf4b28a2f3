/**
 * The rate limiter's hot path (a request under the limit) on one redis-server:
 * kit.rateLimit() vs raw express-rate-limit + rate-limit-redis vs rate-limiter-flexible's
 * RateLimiterRedis in a minimal middleware. The raw stacks use a client built by the kit's own
 * factory, so the difference is the failover layer, not ioredis settings. The limit is huge, so
 * no request is rejected and every one costs one Redis script call.
 *
 *   node --import tsx bench/rate-limit.ts
 *
 * Each app runs alone in a child process (this file with `--serve`); autocannon runs here. The
 * variants are interleaved over several rounds so drift on a shared machine hits them all alike.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { loadAutocannon, mean, median, startApp, stopApp, type Autocannon } from './harness.js'

const VARIANTS = ['raw', 'kit', 'flexible'] as const
type Variant = (typeof VARIANTS)[number]
const LABELS: Record<Variant, string> = {
  raw: 'express-rate-limit 8 + rate-limit-redis 6 (raw)',
  kit: 'kit.rateLimit() (failover store over rate-limit-redis)',
  flexible: 'rate-limiter-flexible RateLimiterRedis, minimal middleware',
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const DURATION_S = Number(process.env.BENCH_DURATION ?? 4)
const WARMUP_S = 2
const CONNECTIONS = 32
const LIMIT = 1_000_000_000
const WINDOW_MS = 60 * 60_000


// ---------------------------------------------------------------- app process

async function serve(variant: Variant, redisPort: number): Promise<void> {
  const { default: express } = await import('express')
  const url = `redis://127.0.0.1:${redisPort}`
  const app = express()
  let close: () => Promise<void>
  if (variant === 'kit') {
    // The compiled build, as users run it (`npm run bench` builds first), not lib/ through tsx.
    const { createKit } = require('../dist/cjs/index.js') as typeof import('../lib/index.js')
    const kit = createKit({ url, env: {}, logger: false })
    await kit.ready()
    if (kit.state !== 'ready') throw new Error(`kit is ${kit.state}`)
    app.use(kit.rateLimit({ windowMs: WINDOW_MS, limit: LIMIT }))
    close = async () => {
      if (kit.state !== 'ready') throw new Error(`kit left Redis during the run (${kit.state})`)
      await kit.close()
    }
  } else {
    const { resolveConfig } = require('../dist/cjs/core/config.js') as typeof import('../lib/core/config.js')
    const { createRedisClient } = require('../dist/cjs/core/redis-client.js') as typeof import('../lib/core/redis-client.js')
    const client = createRedisClient(resolveConfig({ url, env: {}, logger: false }))
    await client.connect()
    if (variant === 'raw') {
      const { rateLimit } = await import('express-rate-limit')
      const { RedisStore } = await import('rate-limit-redis')
      app.use(rateLimit({
        windowMs: WINDOW_MS, limit: LIMIT, standardHeaders: 'draft-8', legacyHeaders: false,
        store: new RedisStore({ prefix: 'raw:', sendCommand: (command: string, ...args: string[]) => client.call(command, ...args) as never }),
      }))
    } else {
      const { RateLimiterRedis, RateLimiterRes } = await import('rate-limiter-flexible')
      const limiter = new RateLimiterRedis({ storeClient: client, keyPrefix: 'flexible', points: LIMIT, duration: WINDOW_MS / 1000 })
      app.use(async function flexibleRateLimit(req, res, next) {
        try {
          await limiter.consume(req.ip ?? 'unknown')
          next()
        } catch (rejection) {
          if (!(rejection instanceof RateLimiterRes)) { next(rejection); return }
          res.set('Retry-After', String(Math.ceil(rejection.msBeforeNext / 1000))).status(429).send('Too Many Requests')
        }
      })
    }
    close = async () => { client.disconnect() }
  }
  app.get('/', (_req, res) => { res.send('ok') })
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`PORT ${typeof address === 'object' && address ? address.port : 0}\n`)
  })
  process.on('SIGTERM', () => {
    server.close()
    close().then(() => process.exit(0), (error: unknown) => { console.error(String(error)); process.exit(1) })
  })
}

// ---------------------------------------------------------------- load generator



/** Script calls (EVALSHA/EVAL) and every other command a client sent (script internals excluded). */
async function scriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  let total = 0
  for (const match of info.matchAll(/cmdstat_(evalsha|eval):calls=(\d+)/g)) total += Number(match[2])
  return total
}

interface Sample { rps: number; p50: number; p99: number; scriptsPerRequest: number }

async function measure(autocannon: Autocannon, variant: Variant, redisPort: number, redis: Redis): Promise<Sample> {
  const { child, port } = await startApp(__filename, variant, [variant, String(redisPort)])
  let sample: Sample
  try {
    const options = { url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS }
    await autocannon({ ...options, duration: WARMUP_S })
    const before = await scriptCalls(redis)
    const result = await autocannon({ ...options, duration: DURATION_S })
    const scripts = await scriptCalls(redis) - before
    if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
      throw new Error(`${variant}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`)
    }
    sample = { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, scriptsPerRequest: scripts / result.requests.total }
  } finally {
    await stopApp(child, variant)
  }
  return sample
}



async function main(): Promise<void> {
  const { RedisServer } = await import('../test/helpers/redis-server.js')
  const autocannon = loadAutocannon()
  const server = await RedisServer.start()
  const redis = new Redis({ host: '127.0.0.1', port: server.port })
  const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v, []]))
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate the order each round so no variant always runs first (or right after another).
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round - 1) % VARIANTS.length] as Variant)
      for (const variant of order) {
        const sample = await measure(autocannon, variant, server.port, redis)
        samples.get(variant)?.push(sample)
        console.error(`round ${round} ${variant}: ${sample.rps.toFixed(0)} req/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, ${sample.scriptsPerRequest.toFixed(2)} script calls/req`)
      }
    }
  } finally {
    redis.disconnect()
    await server.stop()
  }

  const rawSamples = samples.get('raw') ?? []
  const raw = mean(rawSamples.map((s) => s.rps))
  const rows = VARIANTS.map((variant) => {
    const list = samples.get(variant) ?? []
    const rps = mean(list.map((s) => s.rps))
    // Each round's ratio against that round's raw run: drift on a shared machine cancels out.
    const perRound = list.map((s, i) => s.rps / (rawSamples[i]?.rps ?? NaN))
    return `| ${LABELS[variant]} | ${rps.toFixed(0)} | **${(rps / raw).toFixed(2)}×** | ${median(perRound).toFixed(2)}× (${perRound.map((r) => r.toFixed(2)).join(' / ')}) | ${mean(list.map((s) => s.p50)).toFixed(1)} | ${mean(list.map((s) => s.p99)).toFixed(1)} | ${mean(list.map((s) => s.scriptsPerRequest)).toFixed(2)} |`
  })
  const table = [
    `Request under the limit (GET /, one client IP, limit ${LIMIT.toExponential(0)} so nothing is rejected), ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${DURATION_S} s after ${WARMUP_S} s warm-up; node ${process.version}, ${cpus().length} CPUs (load average ${loadavg()[0]?.toFixed(1)} at the end), redis-server on loopback, each app alone in its own process, autocannon in another. express-rate-limit variants send draft-8 headers; the rate-limiter-flexible middleware sends none.`,
    '',
    '| Variant | req/s (mean) | vs raw | vs raw, median of rounds (each round) | p50 ms | p99 ms | Redis script calls/req |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n')
  console.log(table)
  const dir = join(__dirname, 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'rate-limit.md'), `# Rate limit benchmark\n\n${table}`)
}

if (process.argv[2] === '--serve') {
  serve(process.argv[3] as Variant, Number(process.argv[4])).catch((error: unknown) => { console.error(error); process.exit(1) })
} else {
  main().catch((error: unknown) => { console.error(error); process.exit(1) })
}
