/**
 * Observability (issue 15): `/metrics` scraped before, during and after a real outage (kill -9),
 * `kit.stats()`, OpenTelemetry through the SDK's in-memory exporters, diagnostics channels, label
 * cardinality under a flood of distinct URLs and client addresses, and a process that still exits
 * by itself with metrics and telemetry on.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { join } from 'node:path'
import { metrics as otelMetrics, trace } from '@opentelemetry/api'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import express from 'express'
import { Registry } from 'prom-client'
import request from 'supertest'
import type { Kit } from '../../lib/index.js'
import { runDoctor } from '../../lib/doctor/index.js'
import { eventually, internals, testKit, waitForReplay, waitForState } from '../helpers/kit.js'
import { LatencyProxy } from '../helpers/latency-proxy.js'
import { testClient } from '../helpers/redis-client.js'
import { RedisServer } from '../helpers/redis-server.js'
import { sessionApp } from '../helpers/session-app.js'

const root = join(__dirname, '..', '..')

/** One sample of the Prometheus text format (labels as written). */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  assert.ok(line, `${name}{${labels}} is in the scrape`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

function appFor(kit: Kit, registry?: Registry): express.Express {
  const app = express()
  app.use('/metrics', kit.metricsRouter(registry ? { registry } : {}))
  app.get('/cached/:n', kit.cache({ ttl: 60, name: 'pages' }), (req, res) => { res.json({ n: req.params.n }) })
  app.get('/limited', kit.rateLimit({ name: 'api', windowMs: 60_000, limit: 3, keyGenerator: (req) => String(req.headers['x-client']) }), (_req, res) => { res.send('ok') })
  app.get('/visit', async (_req, res) => { res.json({ n: await kit.client.increment('visits') }) })
  return app
}

/** The names of the metrics an OpenTelemetry export holds. */
function exported(batches: ResourceMetrics[]): string[] {
  return batches.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)))
}

describe('metrics: Prometheus, stats, OpenTelemetry, diagnostics channels', function () {
  this.timeout(30_000)
  let server: RedisServer
  let kit: Kit

  beforeEach(async () => {
    server = await RedisServer.start({ persist: true })
    kit = testKit({ url: server.url })
    await kit.ready()
  })

  afterEach(async () => {
    await kit.close()
    await server.stop()
  })

  it('/metrics moves as it should before, during and after a kill -9: state, time degraded, journal, cache and limiter', async () => {
    const app = appFor(kit)
    // One Host for both (the cache keys by host, and supertest listens on a new port per request).
    await request(app).get('/cached/1').set('Host', 'app.test').expect(200)
    // The entry is written after the response went out: the next request hits once it is stored.
    await eventually(() => (kit.stats().cacheStoredBytes.pages ?? 0) > 0, 5000, 'the cache stored the entry')
    await request(app).get('/cached/1').set('Host', 'app.test').expect(200)
    for (let i = 0; i < 4; i++) await request(app).get('/limited').set('x-client', 'c1')
    let text = (await request(app).get('/metrics').expect(200).expect('content-type', /^text\/plain/)).text
    assert.equal(sample(text, 'express_redis_kit_state', 'state="ready"'), 1)
    assert.equal(sample(text, 'express_redis_kit_state', 'state="degraded"'), 0)
    assert.equal(sample(text, 'express_redis_kit_degraded_seconds_total'), 0)
    assert.equal(sample(text, 'express_redis_kit_rate_limit_decisions_total', 'limiter="api",decision="allowed",backend="redis"'), 3)
    assert.equal(sample(text, 'express_redis_kit_rate_limit_decisions_total', 'limiter="api",decision="limited",backend="redis"'), 1)
    assert.ok(sample(text, 'express_redis_kit_commands_total', 'outcome="ok"') > 0)
    assert.ok(sample(text, 'express_redis_kit_command_duration_seconds_count') > 0)
    assert.equal(sample(text, 'express_redis_kit_command_duration_seconds_bucket', 'le="+Inf"'), sample(text, 'express_redis_kit_command_duration_seconds_count'))

    await server.kill()
    await waitForState(kit, 'degraded')
    for (let i = 0; i < 5; i++) await request(app).get('/visit').expect(200)
    for (let i = 0; i < 2; i++) await request(app).get('/limited').set('x-client', 'c2').expect(200)
    text = (await request(app).get('/metrics').expect(200)).text
    assert.equal(sample(text, 'express_redis_kit_state', 'state="degraded"'), 1)
    assert.equal(sample(text, 'express_redis_kit_state', 'state="ready"'), 0)
    assert.ok(sample(text, 'express_redis_kit_journal_pending_entries') >= 1, 'the visits wait in the journal')
    assert.ok(sample(text, 'express_redis_kit_journal_pending_bytes') > 0)
    assert.equal(sample(text, 'express_redis_kit_rate_limit_decisions_total', 'limiter="api",decision="allowed",backend="memory"'), 2)
    assert.ok(sample(text, 'express_redis_kit_memory_entries', 'feature="client"') >= 1, 'the visits are in the client\'s memory twin')
    assert.ok(sample(text, 'express_redis_kit_state_changes_total', 'state="degraded"') >= 1)
    const degradedBefore = sample(text, 'express_redis_kit_degraded_seconds_total')
    await eventually(() => kit.stats().degradedSeconds > degradedBefore + 0.05, 2000, 'time degraded grows')

    await server.start()
    await waitForReplay(kit)
    text = (await request(app).get('/metrics').expect(200)).text
    assert.equal(sample(text, 'express_redis_kit_state', 'state="ready"'), 1)
    assert.equal(sample(text, 'express_redis_kit_journal_pending_entries'), 0)
    assert.equal(sample(text, 'express_redis_kit_journal_pending_bytes'), 0)
    assert.ok(sample(text, 'express_redis_kit_journal_replayed_total') >= 1, 'the journal was replayed')
    assert.ok(sample(text, 'express_redis_kit_probes_total', 'result="ok"') >= 1)
    const degradedAfter = sample(text, 'express_redis_kit_degraded_seconds_total')
    assert.ok(degradedAfter > degradedBefore + 0.05)
    // Back on Redis, the counter stops: a second scrape reads the same time degraded.
    await request(app).get('/visit').expect(200)
    assert.equal(sample((await request(app).get('/metrics')).text, 'express_redis_kit_degraded_seconds_total'), degradedAfter)
    const stats = kit.stats()
    assert.equal(stats.state, 'ready')
    assert.equal(stats.degradedSeconds, degradedAfter)
    assert.ok(stats.journal.replayed >= 1)
    assert.equal(stats.journal.pendingEntries, 0)
    assert.deepEqual(stats.rateLimit.api, { 'allowed:redis': 3, 'limited:redis': 1, 'allowed:memory': 2 })
    assert.equal(stats.commands.ok, sample(text, 'express_redis_kit_commands_total', 'outcome="ok"') + 1)
    // Recorded by the response cache (lib/cache): one miss filled the entry, the second request hit it.
    assert.equal(sample(text, 'express_redis_kit_cache_results_total', 'cache="pages",result="miss"'), 1)
    assert.equal(sample(text, 'express_redis_kit_cache_results_total', 'cache="pages",result="hit"'), 1)
    assert.deepEqual(stats.cache.pages, { miss: 1, hit: 1 })
  })

  it('counts session operations by backend, and near-cache answers during an outage', async () => {
    const { app } = sessionApp(kit)
    const login = await request(app).post('/login?user=ann').expect(200)
    const cookie = login.headers['set-cookie'] as unknown as string[]
    await request(app).get('/me').set('Cookie', cookie).expect(200)
    // A session another instance made: this one never saw it, so it is not in its near-cache.
    const other = testKit({ url: server.url })
    let stranger: string[]
    try {
      stranger = (await request(sessionApp(other).app).post('/login?user=bob').expect(200)).headers['set-cookie'] as unknown as string[]
    } finally {
      await other.close()
    }
    let stats = kit.stats()
    assert.equal(stats.sessions['write:redis'], 1)
    assert.equal(stats.sessions['read:redis'], 1)
    assert.equal(stats.sessionNearCacheHits, 0)

    await server.kill()
    await waitForState(kit, 'degraded')
    await request(app).get('/me').set('Cookie', cookie).expect(200, /ann/)
    await request(app).get('/me').set('Cookie', stranger).expect(401)
    await request(app).post('/logout').set('Cookie', cookie).expect(200)
    stats = kit.stats()
    // Three loads from memory (GET /me twice, POST /logout); two found ann in the near-cache.
    assert.equal(stats.sessions['read:memory'], 3)
    assert.equal(stats.sessionNearCacheHits, 2, 'the logged-in user was answered from the near-cache')
    assert.equal(stats.sessions['destroy:memory'], 1)
    const touches = (stats.sessions['touch:redis'] ?? 0) + (stats.sessions['touch_skipped:redis'] ?? 0)
      + (stats.sessions['touch:memory'] ?? 0) + (stats.sessions['touch_skipped:memory'] ?? 0)
    assert.equal(touches, 2, 'each request that read ann\'s session and kept it touched it (sent or skipped)')
    const text = (await request(express().use('/metrics', kit.metricsRouter())).get('/metrics')).text
    assert.equal(sample(text, 'express_redis_kit_session_operations_total', 'operation="read",backend="memory"'), 3)
    assert.equal(sample(text, 'express_redis_kit_session_near_cache_hits_total'), 2)
  })

  it('counts in-doubt writes and replayed writes Redis rejected (the inputs of two alerts)', async () => {
    const proxy = await LatencyProxy.start(server.port)
    const cut = testKit({ url: proxy.url })
    const direct = testClient(server)
    try {
      await cut.ready()
      proxy.pause()
      await cut.client.increment('doubt') // on the wire when Redis stopped answering
      assert.equal(cut.state, 'degraded')
      proxy.cutAll() // its connection drops: whether Redis ran it cannot be known
      for (let i = 0; i < 3; i++) await cut.client.increment(`typed:${i}`)
      for (let i = 0; i < 3; i++) await direct.hset(`typed:${i}`, 'field', 'x') // another program, meanwhile
      proxy.resume()
      await waitForReplay(cut)
      await eventually(() => cut.stats().journal.rejected === 3, 5000, 'the 3 rejected writes counted')
      const text = (await request(express().use('/metrics', cut.metricsRouter())).get('/metrics')).text
      assert.equal(sample(text, 'express_redis_kit_journal_replay_rejected_total'), 3)
      assert.equal(sample(text, 'express_redis_kit_in_doubt_total', 'feature="client"'), 1)
      assert.deepEqual(cut.stats().journal.inDoubt, { client: 1 })
    } finally {
      direct.disconnect()
      await cut.close()
      await proxy.stop()
    }
  })

  it('adds to the app\'s own prom-client registry, and refuses to add twice', async () => {
    const registry = new Registry()
    const app = express().use('/metrics', kit.metricsRouter({ registry }))
    assert.ok(registry.getSingleMetric('express_redis_kit_commands_total'))
    assert.throws(() => kit.metricsRouter({ registry }), { code: 'ERR_KIT_INVALID_OPTION', message: /registry.*already has a metric named express_redis_kit_/ })
    const second = testKit({ enabled: false })
    try {
      assert.throws(() => second.metricsRouter({ registry }), { code: 'ERR_KIT_INVALID_OPTION' })
    } finally {
      await second.close()
    }
    // The app's own metrics are served alongside the kit's.
    const { Counter } = await import('prom-client')
    new Counter({ name: 'app_orders_total', help: 'Orders.', registers: [registry] }).inc(2)
    const text = (await request(app).get('/metrics').expect(200)).text
    assert.equal(sample(text, 'app_orders_total'), 2)
    assert.equal(sample(text, 'express_redis_kit_state', 'state="ready"'), 1)
  })

  it('refuses a registry that is not one, and an unknown option', () => {
    assert.throws(() => kit.metricsRouter({ registry: {} as Registry }), { code: 'ERR_KIT_INVALID_OPTION', message: /metricsRouter `registry` is not a prom-client Registry/ })
    assert.throws(() => kit.metricsRouter({ register: new Registry() } as never), { code: 'ERR_KIT_INVALID_OPTION', message: /Did you mean `registry`/ })
    assert.throws(() => testKit({ telemetry: 'no' as never }), { code: 'ERR_KIT_INVALID_OPTION', message: /`telemetry` is `"no"`/ })
  })

  it('without prom-client installed, metricsRouter() names the fix; an own registry still works', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'without-prom-client.ts')], { cwd: root })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => { out += d })
      child.stderr.on('data', (d) => { err += d })
      child.on('exit', (exit) => resolve({ code: exit, stdout: out, stderr: err }))
    })
    assert.equal(code, 0, stderr)
    const result = JSON.parse(stdout) as { code: string; message: string; ownRegistry: string }
    assert.equal(result.code, 'ERR_KIT_INVALID_OPTION')
    assert.match(result.message, /npm install prom-client/)
    assert.equal(result.ownRegistry, 'registered')
  })

  it('labels stay bounded under a flood of distinct URLs and client addresses', async () => {
    const app = appFor(kit)
    app.set('trust proxy', true)
    const ipLimited = kit.rateLimit({ name: 'by-ip', windowMs: 60_000, limit: 1 })
    app.get('/by-ip', ipLimited, (_req, res) => { res.send('ok') })
    for (let i = 0; i < 300; i++) {
      await request(app).get(`/cached/${i}?cb=${Math.random()}`).expect(200)
      await request(app).get('/limited').set('x-client', `client-${i}`).expect(200)
      await request(app).get('/by-ip').set('X-Forwarded-For', `10.0.${i >> 8}.${i & 255}`).expect(200)
    }
    const text = (await request(app).get('/metrics').expect(200)).text
    const series = text.split('\n').filter((line) => line.startsWith('express_redis_kit_'))
    assert.ok(series.length < 80, `${series.length} series after 900 distinct requests`)
    assert.ok(!/cb=|client-\d|10\.0\.|\/cached\//.test(text), 'no URL, client key or address in a label')
    assert.equal(sample(text, 'express_redis_kit_rate_limit_decisions_total', 'limiter="by-ip",decision="allowed",backend="redis"'), 300)
  })

  describe('OpenTelemetry, with the SDK\'s in-memory exporters', () => {
    let exporter: InMemoryMetricExporter
    let reader: PeriodicExportingMetricReader
    let provider: MeterProvider
    let spans: InMemorySpanExporter
    let tracing: BasicTracerProvider

    beforeEach(() => {
      exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
      reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
      provider = new MeterProvider({ readers: [reader] })
      spans = new InMemorySpanExporter()
      tracing = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
      otelMetrics.setGlobalMeterProvider(provider)
      trace.setGlobalTracerProvider(tracing)
    })

    afterEach(async () => {
      otelMetrics.disable()
      trace.disable()
      await provider.shutdown()
      await tracing.shutdown()
    })

    it('reports metrics and a replay span when the app has a provider', async () => {
      const otelKit = testKit({ url: server.url })
      try {
        await otelKit.ready()
        await otelKit.client.set('k', 1)
        await otelKit.client.get('k')
        await reader.forceFlush()
        const names = exported(exporter.getMetrics())
        for (const name of ['express_redis_kit.commands', 'express_redis_kit.command.duration', 'express_redis_kit.state', 'express_redis_kit.degraded.time', 'express_redis_kit.journal_pending_entries']) {
          assert.ok(names.includes(name), `${name} in ${names.join(', ')}`)
        }
        const last = exporter.getMetrics().at(-1)
        const commands = last?.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'express_redis_kit.commands')
        const ok = commands?.dataPoints.find((p) => p.attributes.outcome === 'ok')
        assert.ok(ok && Number(ok.value) >= 2, 'commands by outcome, with their label')

        await server.kill()
        await waitForState(otelKit, 'degraded')
        await otelKit.client.set('during', 'outage')
        await otelKit.client.increment('n')
        await server.start()
        await waitForReplay(otelKit)
        const replay = spans.getFinishedSpans().find((s) => s.name === 'express-redis-kit replay')
        assert.ok(replay, 'a replay span')
        assert.equal(replay.attributes['replay.entries'], 2)
        assert.ok(Number(replay.attributes['replay.batches']) >= 1)
      } finally {
        await otelKit.close()
      }
    })

    it('a feature\'s ctx.span() runs its work in a span, records a failure, and is a plain call with telemetry off', async () => {
      const otelKit = testKit({ url: server.url })
      const quiet = testKit({ url: server.url, telemetry: false })
      try {
        const ctx = internals(otelKit).context('client', '')
        assert.equal(await ctx.span('express-redis-kit test', { 'test.kind': 'ok' }, async (span) => { span?.setAttribute('test.hit', true); return 5 }), 5)
        await assert.rejects(ctx.span('express-redis-kit test', { 'test.kind': 'fails' }, async () => { throw new Error('boom') }), /boom/)
        const [ok, failed] = spans.getFinishedSpans().filter((s) => s.name === 'express-redis-kit test')
        assert.deepEqual(ok?.attributes, { 'test.kind': 'ok', 'test.hit': true })
        assert.equal(failed?.status.code, 2)
        assert.equal(failed?.status.message, 'boom')
        assert.equal(failed?.events[0]?.name, 'exception')
        const none = await internals(quiet).context('client', '').span('express-redis-kit test', {}, async (span) => span)
        assert.equal(none, undefined, 'no span handed to the work')
        assert.equal(spans.getFinishedSpans().length, 2)
      } finally {
        await otelKit.close()
        await quiet.close()
      }
    })

    it('a cache fill is a span named after the cache', async () => {
      const otelKit = testKit({ url: server.url })
      try {
        await otelKit.ready()
        const app = express()
        app.get('/c', otelKit.cache({ ttl: 60, name: 'traced' }), (_req, res) => { res.send('x') })
        await request(app).get('/c').expect(200)
        // Added by the response cache (lib/cache) through its context's span().
        await eventually(() => spans.getFinishedSpans().some((s) => s.name === 'express-redis-kit cache fill'), 2000, 'a cache fill span')
        const fill = spans.getFinishedSpans().find((s) => s.name === 'express-redis-kit cache fill')
        assert.equal(fill?.attributes['cache.name'], 'traced')
      } finally {
        await otelKit.close()
      }
    })

    it('the doctor reports one span per check', async () => {
      const report = await runDoctor({ url: server.url, env: {} })
      assert.equal(report.ok, true, report.diagnosis.join('\n'))
      const checks = spans.getFinishedSpans().filter((s) => s.name.startsWith('express-redis-kit doctor '))
      assert.deepEqual(checks.map((s) => s.attributes['doctor.check']), ['connect', 'inspect', 'rights'])
      assert.deepEqual(checks.map((s) => s.attributes['doctor.ok']), [undefined, true, true])
    })

    it('telemetry: false leaves OpenTelemetry alone', async () => {
      const quiet = testKit({ url: server.url, telemetry: false })
      try {
        await quiet.ready()
        await quiet.client.set('k', 1)
        await server.kill()
        await waitForState(quiet, 'degraded')
        await quiet.client.set('during', 'outage')
        await server.start()
        await waitForReplay(quiet)
        await reader.forceFlush()
        assert.deepEqual(exported(exporter.getMetrics()).filter((name) => name.startsWith('express_redis_kit')), [])
        assert.deepEqual(spans.getFinishedSpans().map((s) => s.name), [], 'no span: the other kit had nothing to replay')
        const report = await runDoctor({ url: server.url, env: {}, telemetry: false })
        assert.equal(report.ok, true)
        assert.equal(spans.getFinishedSpans().filter((s) => s.name.startsWith('express-redis-kit doctor ')).length, 0)
        // The numbers are still kept: stats() and /metrics do not depend on telemetry.
        assert.ok(quiet.stats().journal.replayed >= 1)
      } finally {
        await quiet.close()
      }
    })
  })

  it('publishes on diagnostics channels: state, command, replay, cache, rate limit and session', async () => {
    const seen = new Map<string, object[]>()
    const names = ['state', 'command', 'replay', 'cache', 'rate-limit', 'session'].map((name) => `express-redis-kit:${name}`)
    const listeners = names.map((name) => {
      const listener = (message: unknown): void => { seen.set(name, [...(seen.get(name) ?? []), message as object]) }
      subscribe(name, listener)
      return () => unsubscribe(name, listener)
    })
    try {
      const app = appFor(kit)
      const { app: sessions } = sessionApp(kit)
      await request(app).get('/limited').set('x-client', 'd1').expect(200)
      await request(app).get('/cached/7').expect(200)
      await request(sessions).post('/login').expect(200)
      await kit.client.set('k', 1)
      await server.kill()
      await waitForState(kit, 'degraded')
      await kit.client.set('k', 2)
      await server.start()
      await waitForReplay(kit)
      const of = (name: string): object[] => seen.get(`express-redis-kit:${name}`) ?? []
      assert.ok(of('state').some((m) => (m as { state?: string }).state === 'degraded'))
      assert.ok(of('state').some((m) => (m as { state?: string; previous?: string }).state === 'ready' && (m as { previous?: string }).previous === 'degraded'))
      assert.ok(of('command').some((m) => (m as { outcome?: string }).outcome === 'ok' && typeof (m as { durationMs?: unknown }).durationMs === 'number'))
      assert.deepEqual(of('rate-limit'), [{ limiter: 'api', decision: 'allowed', backend: 'redis' }])
      assert.deepEqual(of('cache'), [{ cache: 'pages', result: 'miss', method: 'GET' }])
      assert.deepEqual(of('session'), [{ operation: 'write', backend: 'redis' }])
      assert.equal(of('replay').length, 1)
      assert.equal((of('replay')[0] as { entries: number }).entries, 1)
    } finally {
      for (const stop of listeners) stop()
    }
  })

  it('the example server serves /metrics: limiter decisions and its scan queue', async () => {
    const { createApp } = await import('../../examples/server.js')
    const built = createApp({ kit: { url: server.url, env: {}, logger: false }, scanMs: 1, rateLimit: 1_000_000 })
    try {
      await built.kit.ready()
      await request(built.app).get('/api/visits').expect(200)
      const text = (await request(built.app).get('/metrics').expect(200).expect('content-type', /^text\/plain/)).text
      assert.equal(sample(text, 'express_redis_kit_state', 'state="ready"'), 1)
      assert.equal(sample(text, 'express_redis_kit_rate_limit_decisions_total', 'limiter="api",decision="allowed",backend="redis"'), 1)
      assert.equal(sample(text, 'express_redis_kit_queue_jobs', 'queue="scan",state="held"'), 0)
    } finally {
      await built.kit.close()
    }
  })

  it('a process with metrics and telemetry on exits by itself after close()', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'metrics-and-close.ts')], {
        cwd: root, env: { PATH: process.env.PATH ?? '', REDIS_URL: server.url },
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => { out += d })
      child.stderr.on('data', (d) => { err += d })
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the process did not exit by itself; stdout: ${out}; stderr: ${err}`)) }, 20_000)
      child.on('exit', (exit) => { clearTimeout(timer); resolve({ code: exit, stdout: out, stderr: err }) })
    })
    assert.equal(code, 0, stderr)
    const result = JSON.parse(stdout) as { reachedRedis: boolean; scraped: boolean; exported: string[] }
    assert.equal(result.reachedRedis, true)
    assert.equal(result.scraped, true)
    assert.ok(result.exported.includes('express_redis_kit.commands'), result.exported.join(', '))
  })
})
