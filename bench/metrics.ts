/**
 * What metrics cost on the hot paths: cache hits and requests under a rate limit, on Redis, with
 * metrics on (a prom-client registry attached through kit.metricsRouter() and scraped every second
 * during each measured run; the default `telemetry`, with @opentelemetry/api installed but no
 * provider) against metrics off (`telemetry: false`, no registry, nothing scraped). A third app adds
 * an OpenTelemetry SDK (meter provider exporting every second, tracer provider), for information.
 * The kit counts in all three (its counters are plain increments); they differ in what is exported.
 *
 *   npm run build && node --import tsx bench/metrics.ts
 *
 * The apps run for the whole benchmark, each in its own process (this file with `--serve`);
 * autocannon runs here. The variants' order rotates every round so the machine's noise hits all
 * alike. Besides req/s, each app reports the CPU time it spent per request
 * (process.cpuUsage), which holds up far better than req/s on a shared machine.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { loadAutocannon, median, startApp, stopApp, type Autocannon } from './harness.js'

const VARIANTS = ['on', 'off', 'otel'] as const
type Variant = (typeof VARIANTS)[number]
const WORKLOADS = ['cache-hit', 'rate-limit'] as const
type Workload = (typeof WORKLOADS)[number]
const DESCRIPTIONS: Record<Variant, string> = {
  on: 'on: registry attached and scraped; `telemetry` default (the API installed, no provider registered)',
  off: 'off: no registry, `telemetry: false`',
  otel: 'on, with an OpenTelemetry SDK: as on, plus a meter provider exporting every second and a tracer provider',
}
const PATHS: Record<Workload, string> = { 'cache-hit': '/cached', 'rate-limit': '/limited' }
const LABELS: Record<Workload, string> = {
  'cache-hit': 'kit.cache() hit, Redis (~1 KB JSON)',
  'rate-limit': 'kit.rateLimit(), request under the limit, Redis',
}
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const DURATION_S = Number(process.env.BENCH_DURATION ?? 3)
const WARMUP_S = 0.5
const CONNECTIONS = 32
const SCRAPE_EVERY_MS = 1000
const PAYLOAD = { items: Array.from({ length: 12 }, (_, i) => ({ id: i, name: `item number ${i}`, tags: ['a', 'b', 'c'], score: i * 7 })) }

// ---------------------------------------------------------------- app process

async function serve(variant: Variant, redisPort: number): Promise<void> {
  const { default: express } = await import('express')
  // The compiled build, as users run it (`npm run bench` builds first), not lib/ through tsx.
  const { createKit } = require('../dist/cjs/index.js') as typeof import('../lib/index.js')
  if (variant === 'otel') {
    // An app with an OpenTelemetry SDK: metrics collected and exported every second, spans recorded.
    const { metrics, trace } = await import('@opentelemetry/api')
    const { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } = await import('@opentelemetry/sdk-metrics')
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 })
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] }))
    // Only the last export is kept: the exporter must not grow through the benchmark.
    setInterval(() => { exporter.reset() }, 5000).unref()
  }
  const kit = createKit({ url: `redis://127.0.0.1:${redisPort}`, env: {}, logger: false, ...(variant === 'off' ? { telemetry: false } : {}) })
  await kit.ready()
  if (kit.state !== 'ready') throw new Error(`kit is ${kit.state}`)
  const app = express()
  let cpuMark = process.cpuUsage()
  app.get('/cpu', (_req, res) => {
    const used = process.cpuUsage(cpuMark)
    cpuMark = process.cpuUsage()
    res.json({ micros: used.user + used.system })
  })
  if (variant !== 'off') {
    const { Registry } = await import('prom-client')
    app.use('/metrics', kit.metricsRouter({ registry: new Registry() }))
  }
  app.get(PATHS['cache-hit'], kit.cache({ ttl: 3600, name: 'bench' }), (_req, res) => { res.json(PAYLOAD) })
  app.get(PATHS['rate-limit'], kit.rateLimit({ name: 'bench', windowMs: 60 * 60_000, limit: 1_000_000_000 }), (_req, res) => { res.send('ok') })
  const server = app.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`PORT ${typeof address === 'object' && address ? address.port : 0}\n`)
  })
  process.on('SIGTERM', () => {
    server.close()
    const left = kit.state
    kit.close().then(() => process.exit(left === 'ready' ? 0 : 1), () => process.exit(1))
  })
}

// ---------------------------------------------------------------- load generator

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

interface App { variant: Variant; child: ChildProcess; port: number }
interface Sample { rps: number; cpuPerRequest: number; p99: number; scrapes: number }

async function prepare(variant: Variant, redisPort: number): Promise<App> {
  const { child, port } = await startApp(__filename, variant, [variant, String(redisPort)])
  for (const workload of WORKLOADS) {
    const reply = await get(port, PATHS[workload])
    if (reply.status !== 200) throw new Error(`${variant} ${workload}: ${reply.status} ${reply.body.slice(0, 80)}`)
  }
  const metrics = await get(port, '/metrics')
  if ((metrics.status === 200) !== (variant !== 'off')) throw new Error(`${variant}: GET /metrics answered ${metrics.status}`)
  return { variant, child, port }
}

async function measure(autocannon: Autocannon, app: App, workload: Workload): Promise<Sample> {
  const url = `http://127.0.0.1:${app.port}${PATHS[workload]}`
  await autocannon({ url, connections: CONNECTIONS, duration: WARMUP_S })
  await get(app.port, '/cpu')
  let scrapes = 0
  let scraping: Promise<void> = Promise.resolve()
  // Prometheus' view: one scrape a second while the load runs (the kit's series, read and formatted).
  const timer = app.variant !== 'off'
    ? setInterval(() => {
      scraping = get(app.port, '/metrics').then((reply) => {
        if (reply.status !== 200 || !reply.body.includes('express_redis_kit_state{state="ready"} 1')) throw new Error(`scrape: ${reply.status}`)
        scrapes++
      })
    }, SCRAPE_EVERY_MS)
    : undefined
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S })
  clearInterval(timer)
  await scraping
  const cpu = JSON.parse((await get(app.port, '/cpu')).body) as { micros: number }
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`${app.variant} ${workload}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`)
  }
  return { rps: result.requests.total / DURATION_S, cpuPerRequest: cpu.micros / result.requests.total, p99: result.latency.p99, scrapes }
}

async function main(): Promise<void> {
  const { RedisServer } = await import('../test/helpers/redis-server.js')
  const autocannon = loadAutocannon()
  const server = await RedisServer.start()
  const samples = new Map<string, Sample[]>()
  const key = (workload: Workload, variant: Variant): string => `${workload}/${variant}`
  const started = performance.now()
  const apps: App[] = []
  try {
    for (const variant of VARIANTS) apps.push(await prepare(variant, server.port))
    for (let round = 1; round <= ROUNDS; round++) {
      for (const workload of WORKLOADS) {
        // The order rotates every round, so no variant always runs first (or right after another).
        const order = apps.map((_, i) => apps[(i + round - 1) % apps.length] as App)
        for (const app of order) {
          const sample = await measure(autocannon, app, workload)
          samples.set(key(workload, app.variant), [...(samples.get(key(workload, app.variant)) ?? []), sample])
          console.error(`round ${round} ${workload} metrics ${app.variant}: ${sample.rps.toFixed(0)} req/s, ${sample.cpuPerRequest.toFixed(1)} µs app CPU/req, p99 ${sample.p99} ms, ${sample.scrapes} scrapes`)
        }
      }
    }
  } finally {
    await Promise.all(apps.map((app) => stopApp(app.child, app.variant)))
    await server.stop()
  }

  const rows: string[] = []
  const ratios: string[] = []
  // Best of the rounds: noise from other processes only ever makes a round slower.
  const bestRps = (list: Sample[]): number => Math.max(...list.map((s) => s.rps))
  const bestCpu = (list: Sample[]): number => Math.min(...list.map((s) => s.cpuPerRequest))
  for (const workload of WORKLOADS) {
    const off = samples.get(key(workload, 'off')) ?? []
    for (const variant of VARIANTS) {
      const list = samples.get(key(workload, variant)) ?? []
      rows.push(`| ${LABELS[workload]} | ${DESCRIPTIONS[variant]} | ${bestRps(list).toFixed(0)} | ${median(list.map((s) => s.rps)).toFixed(0)} | ${bestCpu(list).toFixed(1)} | ${median(list.map((s) => s.p99)).toFixed(1)} | ${list.map((s) => s.rps.toFixed(0)).join(' ')} |`)
      if (variant === 'off') continue
      // Each round's ratio: the variants ran back to back, so drift on a shared machine cancels out.
      const perRound = list.map((s, i) => s.rps / (off[i]?.rps ?? NaN))
      const cpuPerRound = list.map((s, i) => (off[i]?.cpuPerRequest ?? NaN) / s.cpuPerRequest)
      ratios.push(`| ${LABELS[workload]}, ${variant} / off | ${(bestRps(list) / bestRps(off)).toFixed(3)}× | ${median(perRound).toFixed(3)}× (${perRound.map((r) => r.toFixed(2)).join(' / ')}) | ${(bestCpu(off) / bestCpu(list)).toFixed(3)}× | ${median(cpuPerRound).toFixed(3)}× (${cpuPerRound.map((r) => r.toFixed(2)).join(' / ')}) | ${variant === 'on' ? '≥ 0.97×' : '(for information)'} |`)
    }
  }
  const table = [
    `${CONNECTIONS} connections, ${ROUNDS} rounds of ${DURATION_S} s after ${WARMUP_S} s warm-up, the variants' order rotating every round; Prometheus scrapes (\`on\`, \`otel\`) every ${SCRAPE_EVERY_MS / 1000} s during each run. node ${process.version}, ${cpus().length} CPUs (load average ${loadavg()[0]?.toFixed(1)} at the end), redis-server on loopback, the three apps started once, each in its own process, autocannon in another. Total ${((performance.now() - started) / 1000).toFixed(0)} s.`,
    '',
    '| Workload | Metrics | req/s (best) | req/s (median) | app CPU µs/req (best) | p99 ms (median) | req/s per round |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- |',
    ...rows,
    '',
    '| Ratio | req/s (best) | req/s, median of rounds (each round) | app CPU (best) | app CPU, median of rounds (each round) | Target |',
    '| --- | ---: | --- | ---: | --- | --- |',
    ...ratios,
    '',
    'Ratios above 1 mean faster / cheaper than metrics off. CPU ratios are (CPU per request with metrics off) / (with metrics on). Scrapes are served by the app process, so their CPU is in the figures. The kit counts in every variant (its counters are plain increments); the variants differ in what is exported.',
    '',
  ].join('\n')
  console.log(table)
  const dir = join(__dirname, 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'metrics.md'), `# Metrics benchmark\n\n${table}`)
}

if (process.argv[2] === '--serve') {
  serve(process.argv[3] as Variant, Number(process.argv[4])).catch((error: unknown) => { console.error(error); process.exit(1) })
} else {
  main().catch((error: unknown) => { console.error(error); process.exitCode = 1 })
}
