/**
 * OpenTelemetry: the kit's metrics as observable instruments read at collection time, command
 * latency recorded on a histogram, and spans for the kit's slow operations (a replay after an
 * outage, a cache fill) — through @opentelemetry/api, an optional peer: with no API installed, or
 * no provider registered by the app, all of it is a no-op.
 */
import type { Attributes, Meter, ObservableResult, Span, Tracer } from '@opentelemetry/api'
import type { LabeledCounter, MetricInfo } from '../core/metrics.js'
import { optionalPeer } from './prometheus.js'
import { counters, GAUGES, STATES, type MetricsSource } from './source.js'

interface OtelApi {
  metrics: { getMeter(name: string, version?: string): Meter }
  trace: { getTracer(name: string, version?: string): Tracer }
  SpanStatusCode: { ERROR: number }
}

/** The OpenTelemetry name of a metric: dots instead of the Prometheus prefix and suffixes. */
function otelName(info: MetricInfo): string {
  return info.name.replace(/^express_redis_kit_/, 'express_redis_kit.').replace(/_total$/, '').replace(/_seconds$/, '.duration')
}

function api(): OtelApi | undefined {
  try {
    return optionalPeer<OtelApi>('@opentelemetry/api')
  } catch {
    return undefined
  }
}

/** Registers the kit's instruments on the app's meter provider; returns a tracer for spans. */
export function startOpenTelemetry(source: MetricsSource): Tracer | undefined {
  const otel = api()
  if (!otel) return undefined
  const meter = otel.metrics.getMeter('express-redis-kit')
  const observe = (info: MetricInfo, read: (result: ObservableResult) => void): void => {
    const options = { description: info.help, unit: info.unit }
    const instrument = info.type === 'gauge' ? meter.createObservableGauge(otelName(info), options) : meter.createObservableCounter(otelName(info), options)
    instrument.addCallback(read)
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
  const latency = meter.createHistogram(otelName(source.metrics.latency.info), { description: source.metrics.latency.info.help, unit: 's' })
  source.metrics.latency.listen((seconds) => latency.record(seconds))
  return otel.trace.getTracer('express-redis-kit')
}

/** Runs `work` in a span when a tracer is there; the span records the error when it throws. */
export async function inSpan<T>(tracer: Tracer | undefined, name: string, attributes: Attributes, work: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!tracer) return work(undefined)
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span)
    } catch (error) {
      span.recordException(error as Error)
      span.setStatus({ code: 2, message: (error as Error).message })
      throw error
    } finally {
      span.end()
    }
  })
}
