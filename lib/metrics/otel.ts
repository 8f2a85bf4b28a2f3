/**
 * OpenTelemetry metrics: the kit's counters and gauges as observable instruments read at
 * collection time, and command latency recorded on a histogram — through @opentelemetry/api, an
 * optional peer. Without the API installed nothing is registered; without a meter provider set by
 * the app (before createKit(): the metrics API has no proxy) the instruments are no-ops.
 * Spans are in core/spans.ts (core starts them: replays; features through their context).
 */
import type { Meter, ObservableCallback, ObservableResult } from '@opentelemetry/api'
import type { LabeledCounter, MetricInfo } from '../core/metrics.js'
import { optionalPeer } from '../core/peers.js'
import { counters, GAUGES, STATES, type MetricsSource } from './source.js'

interface OtelApi {
  metrics: { getMeter(name: string): Meter }
  /** The API's one no-op meter: what getMeter() returns while no provider is registered. */
  createNoopMeter?(): Meter
}

/**
 * The OpenTelemetry name of a metric: the Prometheus name with dots after the namespace, without
 * `_total` or a unit (the unit is the instrument's): `commands_total` → `express_redis_kit.commands`,
 * `command_duration_seconds` → `express_redis_kit.command.duration`, `degraded_seconds_total` →
 * `express_redis_kit.degraded.time`.
 */
export function otelName(info: MetricInfo): string {
  const name = info.name.replace(/^express_redis_kit_/, '')
    .replace(/_seconds_total$/, '.time').replace(/_duration_seconds$/, '.duration').replace(/_total$/, '')
  return `express_redis_kit.${name}`
}

function api(): OtelApi | undefined {
  try {
    return optionalPeer<OtelApi>('@opentelemetry/api')
  } catch {
    return undefined
  }
}

/** What undoes startOpenTelemetry (kit.close()): the callbacks and the latency listener go. */
export interface OpenTelemetryHandle {
  stop(): void
}

/**
 * Registers the kit's instruments on the app's meter provider; undefined without the API, or
 * without a provider (then nothing would be recorded, and the latency listener would only cost).
 */
export function startOpenTelemetry(source: MetricsSource): OpenTelemetryHandle | undefined {
  const otel = api()
  if (!otel) return undefined
  const meter = otel.metrics.getMeter('express-redis-kit')
  if (meter === otel.createNoopMeter?.()) return undefined
  const stops: (() => void)[] = []
  const observe = (info: MetricInfo, read: (result: ObservableResult) => void | Promise<void>): void => {
    const options = { description: info.help, unit: info.unit }
    const instrument = info.type === 'gauge' ? meter.createObservableGauge(otelName(info), options) : meter.createObservableCounter(otelName(info), options)
    const callback: ObservableCallback = (result) => read(result)
    instrument.addCallback(callback)
    stops.push(() => instrument.removeCallback(callback))
  }
  const fromCounter = (counter: LabeledCounter) => (result: ObservableResult): void => {
    for (const { labels, value } of counter.series()) result.observe(value, labels)
  }
  for (const counter of counters(source.metrics)) observe(counter.info, fromCounter(counter))
  observe(GAUGES.state, (result) => { for (const state of STATES) result.observe(source.state() === state ? 1 : 0, { state }) })
  observe(GAUGES.degraded, (result) => result.observe(source.metrics.degradedSeconds()))
  observe(GAUGES.journalEntries, (result) => result.observe(source.journal().entries))
  observe(GAUGES.journalBytes, (result) => result.observe(source.journal().bytes))
  observe(GAUGES.memoryEntries, (result) => { for (const [feature, size] of Object.entries(source.memory())) result.observe(size.entries, { feature }) })
  observe(GAUGES.memoryBytes, (result) => { for (const [feature, size] of Object.entries(source.memory())) result.observe(size.bytes, { feature }) })
  const queues = source.queues?.bind(source)
  if (queues) {
    observe(GAUGES.jobsWaiting, async (result) => {
      for (const [queue, states] of Object.entries(await queues())) for (const [state, value] of Object.entries(states)) result.observe(value, { queue, state })
    })
  }
  const info = source.metrics.latency.info
  const latency = meter.createHistogram(otelName(info), { description: info.help, unit: info.unit })
  stops.push(source.metrics.latency.listen((seconds) => latency.record(seconds)))
  return { stop: () => { for (const stop of stops.splice(0)) stop() } }
}
