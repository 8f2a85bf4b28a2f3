/**
 * The metrics registry on its own (no Redis): the README's table is the code's list, names are
 * unique in both exporters, series are bounded, time degraded only grows while degraded, and the
 * `telemetry` option is read like every other.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { resolveConfig } from '../../lib/core/config.js'
import { LabeledCounter, Metrics } from '../../lib/core/metrics.js'
import { otelName } from '../../lib/metrics/otel.js'
import { metricInfos, metricsTable, TABLE_HEADER } from '../../scripts/metrics-table.js'

const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8')

/** The rows of the README's metrics table. */
function readmeRows(): string[] {
  const start = readme.indexOf(TABLE_HEADER)
  assert.ok(start !== -1, `README has a table headed ${TABLE_HEADER}`)
  const rows: string[] = []
  for (const row of readme.slice(start).split('\n').slice(2)) {
    if (!row.startsWith('|')) break
    rows.push(row)
  }
  return rows
}

describe('metrics', () => {
  it('the README table lists exactly the metrics the code exports', () => {
    const names = readmeRows().map((row) => /^\| `([a-z_]+)` \|/.exec(row)?.[1])
    assert.deepEqual([...names].sort(), metricInfos().map((info) => info.name).sort())
  })

  it('the README table is the one scripts/metrics-table.ts prints (type, unit, labels and meaning as in the code)', () => {
    const start = readme.indexOf(TABLE_HEADER)
    assert.ok(readme.slice(start).startsWith(metricsTable()), 'run `node --import tsx scripts/metrics-table.ts` and paste its output into the README')
  })

  it('every name is unique, in Prometheus and in OpenTelemetry', () => {
    const infos = metricInfos()
    assert.equal(new Set(infos.map((info) => info.name)).size, infos.length)
    assert.equal(new Set(infos.map(otelName)).size, infos.length)
    assert.ok(infos.every((info) => /^express_redis_kit_[a-z_]+$/.test(info.name)))
    assert.ok(infos.filter((info) => info.type === 'counter').every((info) => info.name.endsWith('_total')))
  })

  it('a counter keeps a bounded number of series, whatever the labels', () => {
    const counter = new LabeledCounter({ name: 'x_total', help: '', type: 'counter', unit: '1', labels: ['a'] }, 10)
    for (let i = 0; i < 100; i++) counter.add({ a: `v${i}` })
    assert.equal(counter.series().length, 10)
    assert.equal(counter.total(), 10)
    counter.add({ a: 'v0' }, 5)
    assert.equal(counter.total({ a: 'v0' }), 6)
  })

  it('labels not declared are dropped, never stored', () => {
    const metrics = new Metrics()
    metrics.rateLimit.add({ limiter: 'api', decision: 'allowed', backend: 'redis', key: '203.0.113.9' })
    assert.deepEqual(metrics.rateLimit.series(), [{ labels: { limiter: 'api', decision: 'allowed', backend: 'redis' }, value: 1 }])
  })

  it('a bound series counts into the same number as add() with the same labels', () => {
    const metrics = new Metrics()
    const series = metrics.rateLimit.bind({ limiter: 'api', decision: 'limited', backend: 'memory' })
    series.add()
    metrics.rateLimit.add({ backend: 'memory', decision: 'limited', limiter: 'api' })
    assert.equal(metrics.rateLimit.bind({ limiter: 'api', decision: 'limited', backend: 'memory' }), series)
    assert.deepEqual(metrics.rateLimit.series(), [{ labels: { limiter: 'api', decision: 'limited', backend: 'memory' }, value: 2 }])
  })

  it('time degraded grows only while degraded, across outages', () => {
    const metrics = new Metrics()
    metrics.enterState('ready', 0)
    assert.equal(metrics.degradedSeconds(5000), 0)
    metrics.enterState('degraded', 1000)
    assert.equal(metrics.degradedSeconds(2500), 1.5)
    metrics.enterState('ready', 3000)
    assert.equal(metrics.degradedSeconds(9000), 2)
    metrics.enterState('degraded', 10_000)
    metrics.enterState('ready', 10_500)
    assert.equal(metrics.degradedSeconds(20_000), 2.5)
    assert.deepEqual(metrics.stateChanges.series().map((s) => [s.labels.state, s.value]), [['ready', 3], ['degraded', 2]])
  })

  it('telemetry defaults to on, and takes true or false only', () => {
    assert.equal(resolveConfig({ env: {}, logger: false }).telemetry, true)
    assert.equal(resolveConfig({ env: {}, logger: false, telemetry: false }).telemetry, false)
    assert.throws(() => resolveConfig({ env: {}, logger: false, telemetry: 'false' as never }), { code: 'ERR_KIT_INVALID_OPTION', message: /`telemetry` is `"false"`. Use true or false \(default true\)/ })
    assert.throws(() => resolveConfig({ env: {}, logger: false, Telemetry: false } as never), { code: 'ERR_KIT_INVALID_OPTION', message: /Did you mean `telemetry`/ })
  })
})
