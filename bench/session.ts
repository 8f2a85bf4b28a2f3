/**
 * Session read+touch path with an existing session: raw express-session + connect-redis 8 vs
 * kit.session() with touch throttling off (`touchAfterMs: 0`) and on (the default), all on the
 * same redis-server. The raw stack runs twice: on `new Redis(url)` with ioredis' defaults, as
 * connect-redis' README sets it up (the baseline of every ratio), and on a client from the kit's
 * own factory (auto-pipelining, fail-fast), which isolates the cost of the failover layer.
 *
 *   npm run build && node --import tsx bench/session.ts
 *
 * Each app runs in its own child process (this file with `--serve`) and autocannon runs here,
 * loading one app at a time in short bursts, rotating over many rounds, so drift on a shared
 * machine hits every variant alike.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { loadAutocannon, mean, median, startApp, stopApp, type Autocannon } from './harness.js'

const SECRET = 'bench-secret-bench-secret-bench-secret-0123'
const VARIANTS = ['raw', 'raw-kit-client', 'kit-touch-off', 'kit-touch-on'] as const
type Variant = (typeof VARIANTS)[number]
const LABELS: Record<Variant, string> = {
  raw: 'express-session + connect-redis 8 (raw, `new Redis(url)` defaults)',
  'raw-kit-client': 'express-session + connect-redis 8 on the kit\'s client settings',
  'kit-touch-off': 'kit.session(), touch throttling off',
  'kit-touch-on': 'kit.session(), touch throttling on (default)',
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12)
const DURATION_S = Number(process.env.BENCH_DURATION ?? 2)
const WARMUP_S = 3
const CONNECTIONS = 32


// ---------------------------------------------------------------- app process

async function serve(variant: Variant, redisPort: number): Promise<void> {
  const { default: express } = await import('express')
  const { default: session } = await import('express-session')
  const url = `redis://127.0.0.1:${redisPort}`
  const app = express()
  // CPU time of this process: per request it is far steadier than req/s on a shared machine.
  app.get('/__cpu', (_req, res) => {
    const { user, system } = process.cpuUsage()
    res.json({ us: user + system })
  })
  let close: () => Promise<void>
  if (variant === 'raw' || variant === 'raw-kit-client') {
    const { RedisStore } = await import('connect-redis')
    // The compiled build, as users run it (`npm run bench` builds first), not lib/ through tsx.
    const { resolveConfig } = require('../dist/cjs/core/config.js') as typeof import('../lib/core/config.js')
    const { createRedisClient } = require('../dist/cjs/core/redis-client.js') as typeof import('../lib/core/redis-client.js')
    const client = variant === 'raw'
      ? new Redis(url, { lazyConnect: true })
      : createRedisClient(resolveConfig({ url, env: {}, logger: false }))
    await client.connect()
    app.use(session({
      store: new RedisStore({ client, prefix: 'session:' }), secret: SECRET, name: 'sid',
      resave: false, saveUninitialized: false, cookie: { httpOnly: true, sameSite: 'lax', secure: false },
    }))
    close = async () => { client.disconnect() }
  } else {
    const { createKit } = require('../dist/cjs/index.js') as typeof import('../lib/index.js')
    const kit = createKit({ url, env: {}, logger: false })
    await kit.ready()
    if (kit.state !== 'ready') throw new Error(`kit is ${kit.state}`)
    const middleware = kit.session({ secret: SECRET, ...(variant === 'kit-touch-on' ? {} : { touchAfterMs: 0 }) })
    app.use(middleware)
    close = () => kit.close()
  }
  app.post('/login', (req, res) => {
    (req.session as unknown as { user: string }).user = 'bench-user'
    res.json({ ok: true })
  })
  app.get('/me', (req, res) => {
    const user = (req.session as unknown as { user?: string }).user
    if (user === undefined) res.status(401).end()
    else res.json({ user })
  })
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`PORT ${typeof address === 'object' && address ? address.port : 0}\n`)
  })
  process.on('SIGTERM', () => { server.close(); void close().then(() => process.exit(0)) })
}

// ---------------------------------------------------------------- load generator



function appCpuMicros(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/__cpu' }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve((JSON.parse(body) as { us: number }).us))
    })
    req.on('error', reject)
    req.end()
  })
}

function login(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/login' }, (res) => {
      res.resume()
      const cookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('sid='))
      if (res.statusCode !== 200 || !cookie) reject(new Error(`login failed: ${String(res.statusCode)}`))
      else resolve(cookie.split(';')[0] as string)
    })
    req.on('error', reject)
    req.end()
  })
}

async function commandCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  let total = 0
  for (const match of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
    if (match[1] !== 'info') total += Number(match[2])
  }
  return total
}

interface Sample { rps: number; p50: number; p99: number; commandsPerRequest: number; redisCpuUsPerRequest: number; appCpuUsPerRequest: number }

/** CPU seconds redis-server has used (user + system), from INFO cpu. */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const read = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN)
  return read('used_cpu_user') + read('used_cpu_sys')
}

interface RunningApp { variant: Variant; child: ChildProcess; port: number; cookie: string }

/** One burst of load on one app (the others sit idle), with Redis's and the app's counters around it. */
async function measure(autocannon: Autocannon, app: RunningApp, redis: Redis, seconds: number): Promise<Sample> {
  const options = { url: `http://127.0.0.1:${app.port}/me`, connections: CONNECTIONS, headers: { cookie: app.cookie }, duration: seconds }
  const before = await commandCalls(redis)
  const cpuBefore = await redisCpuSeconds(redis)
  const appBefore = await appCpuMicros(app.port)
  const result = await autocannon(options)
  const appCpu = await appCpuMicros(app.port) - appBefore
  const cpu = await redisCpuSeconds(redis) - cpuBefore
  const commands = await commandCalls(redis) - before
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${app.variant}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`)
  }
  const total = result.requests.total
  return {
    rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, commandsPerRequest: commands / total,
    redisCpuUsPerRequest: cpu * 1e6 / total, appCpuUsPerRequest: appCpu / total,
  }
}



async function main(): Promise<void> {
  const { RedisServer } = await import('../test/helpers/redis-server.js')
  const autocannon = loadAutocannon()
  const server = await RedisServer.start()
  const redis = new Redis({ host: '127.0.0.1', port: server.port })
  const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v, []]))
  const apps: RunningApp[] = []
  try {
    // Every app is started once and logged in; then short bursts go to one app at a time, the
    // order rotating each round, so no variant owns a quiet (or busy) stretch of the run.
    for (const variant of VARIANTS) {
      const { child, port } = await startApp(__filename, variant, [variant, String(server.port)])
      apps.push({ variant, child, port, cookie: await login(port) })
    }
    for (const app of apps) await measure(autocannon, app, redis, WARMUP_S)
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < apps.length; i++) {
        const app = apps[(round + i) % apps.length] as RunningApp
        const sample = await measure(autocannon, app, redis, DURATION_S)
        samples.get(app.variant)?.push(sample)
        console.error(`round ${round + 1} ${app.variant}: ${sample.rps.toFixed(0)} req/s, p50 ${sample.p50} ms, p99 ${sample.p99} ms, `
          + `${sample.commandsPerRequest.toFixed(2)} Redis cmds/req, ${sample.redisCpuUsPerRequest.toFixed(1)} µs Redis CPU/req, ${sample.appCpuUsPerRequest.toFixed(0)} µs app CPU/req`)
      }
    }
  } finally {
    await Promise.all(apps.map((app) => stopApp(app.child, app.variant)))
    redis.disconnect()
    await server.stop()
  }

  // Other work on a shared machine only ever slows a round down, so the headline is each
  // variant's best round (highest req/s, lowest CPU per request); the median of the per-round
  // ratios against the raw run next to it is shown too.
  const rawSamples = samples.get('raw') ?? []
  const best = (list: Sample[]) => ({
    rps: Math.max(...list.map((s) => s.rps)),
    appCpu: Math.min(...list.map((s) => s.appCpuUsPerRequest)),
    redisCpu: Math.min(...list.map((s) => s.redisCpuUsPerRequest)),
  })
  const rawBest = best(rawSamples)
  const rows = VARIANTS.map((variant) => {
    const list = samples.get(variant) ?? []
    const top = best(list)
    const perRound = list.map((s, i) => s.rps / (rawSamples[i]?.rps ?? NaN))
    return `| ${LABELS[variant]} | ${top.rps.toFixed(0)} | **${(top.rps / rawBest.rps).toFixed(2)}×** | ${median(perRound).toFixed(2)}× `
      + `| ${top.appCpu.toFixed(0)} | **${(rawBest.appCpu / top.appCpu).toFixed(2)}×** `
      + `| ${median(list.map((s) => s.p50)).toFixed(1)} | ${median(list.map((s) => s.p99)).toFixed(1)} `
      + `| ${mean(list.map((s) => s.commandsPerRequest)).toFixed(2)} | ${top.redisCpu.toFixed(1)} | ${list.map((s) => s.rps.toFixed(0)).join(' / ')} |`
  })
  const table = [
    `Session read+touch (GET with an existing session), ${CONNECTIONS} connections, ${ROUNDS} rounds of one ${DURATION_S} s burst per variant (order rotating) after a ${WARMUP_S} s warm-up; `
      + `node ${process.version}, ${cpus().length} CPUs (load average ${loadavg()[0]?.toFixed(1)} at the end), redis-server on loopback, app and autocannon in separate processes. `
      + 'The kit is its compiled CommonJS build (dist/cjs), as users run it. '
      + 'Best round per variant (req/s highest, CPU lowest); ratios are against the raw stack on ioredis\' defaults (first row).',
    '',
    '| Variant | req/s (best) | vs raw | vs raw (median of per-round ratios) | app CPU µs/req (best) | vs raw (CPU: raw ÷ variant) | p50 ms (median) | p99 ms (median) | Redis cmds/req | Redis CPU µs/req (best) | req/s each round |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
    '',
  ].join('\n')
  console.log(table)
  const dir = join(__dirname, 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'session.md'), `# Session benchmark\n\n${table}`)
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] as Variant, Number(process.argv[4]))
} else {
  main().catch((error: unknown) => { console.error(error); process.exitCode = 1 })
}
