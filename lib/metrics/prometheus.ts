/**
 * Prometheus: the kit's metrics in prom-client's registry (the app's own, or a new one), read
 * from the kit's counters at scrape time — nothing is done per request for Prometheus.
 * prom-client is an optional peer dependency: loaded only when metrics are asked for.
 */
import { createRequire } from 'node:module'
import express, { type Request, type Response, type Router } from 'express'
import { LATENCY_BUCKETS, type MetricInfo } from '../core/metrics.js'
import { invalidOption } from '../core/errors.js'
import { counters, GAUGES, histograms, STATES, type MetricsSource } from './source.js'

/** The part of prom-client's Registry the kit uses. */
export interface PromRegistry {
  registerMetric(metric: unknown): void
  getSingleMetric(name: string): unknown
  metrics(): Promise<string>
  readonly contentType: string
}

interface PromValue {
  value: number
  labels: Record<string, string | number>
  metricName?: string
}

/** A collector prom-client calls at scrape time (it duck-types metrics by `name` and `get()`). */
function collector(info: MetricInfo, values: () => PromValue[] | Promise<PromValue[]>): unknown {
  return {
    name: info.name,
    help: info.help,
    type: info.type,
    aggregator: 'sum',
    async get() {
      return { name: info.name, help: info.help, type: info.type, aggregator: 'sum', values: await values() }
    },
    reset() {},
  }
}

function histogramValues(source: MetricsSource): PromValue[] {
  const histogram = histograms(source.metrics)[0]
  if (!histogram) return []
  const out: PromValue[] = []
  let cumulative = 0
  LATENCY_BUCKETS.forEach((le, i) => {
    cumulative += histogram.counts[i] as number
    out.push({ metricName: `${histogram.info.name}_bucket`, labels: { le }, value: cumulative })
  })
  out.push({ metricName: `${histogram.info.name}_bucket`, labels: { le: '+Inf' }, value: histogram.count })
  out.push({ metricName: `${histogram.info.name}_sum`, labels: {}, value: histogram.sum })
  out.push({ metricName: `${histogram.info.name}_count`, labels: {}, value: histogram.count })
  return out
}

/** Adds every kit metric to `registry`; a second kit on one registry needs its own `prefix`-free labels (see README). */
export function registerKitMetrics(registry: PromRegistry, source: MetricsSource): void {
  const { metrics } = source
  const add = (info: MetricInfo, values: () => PromValue[] | Promise<PromValue[]>): void => {
    if (registry.getSingleMetric(info.name) !== undefined) {
      throw invalidOption('metrics registry', `already has a metric named ${info.name}`, 'Use one registry per kit, or register the kit\'s metrics once.')
    }
    registry.registerMetric(collector(info, values))
  }
  for (const counter of counters(metrics)) add(counter.info, () => counter.series())
  add(metrics.latency.info, () => histogramValues(source))
  add(GAUGES.state, () => STATES.map((state) => ({ labels: { state }, value: source.state() === state ? 1 : 0 })))
  add(GAUGES.degraded, () => [{ labels: {}, value: metrics.degradedSeconds() }])
  add(GAUGES.journalEntries, () => [{ labels: {}, value: source.journal().entries }])
  add(GAUGES.journalBytes, () => [{ labels: {}, value: source.journal().bytes }])
  add(GAUGES.memoryEntries, () => Object.entries(source.memory()).map(([feature, size]) => ({ labels: { feature }, value: size.entries })))
  add(GAUGES.memoryBytes, () => Object.entries(source.memory()).map(([feature, size]) => ({ labels: { feature }, value: size.bytes })))
  if (source.queues) {
    const queues = source.queues.bind(source)
    add(GAUGES.jobsWaiting, async () => Object.entries(await queues()).flatMap(([queue, states]) =>
      Object.entries(states).map(([state, value]) => ({ labels: { queue, state }, value }))))
  }
}

interface PromClient {
  Registry: new () => PromRegistry
}

/**
 * An optional peer, loaded synchronously when asked for (so a missing one fails at start-up): the
 * CommonJS build has `require`; the ES module build resolves from the app's directory.
 */
export function optionalPeer<T>(name: string): T {
  const load = typeof require === 'function' ? require : createRequire(`${process.cwd()}/`)
  return load(name) as T
}

/** prom-client, loaded only now: it is an optional peer dependency. */
function loadPromClient(): PromClient {
  try {
    return optionalPeer<PromClient>('prom-client')
  } catch {
    throw invalidOption('kit.metricsRouter()', 'needs prom-client, which is not installed',
      'Run `npm install prom-client` (the kit works with 15.x), or pass your own registry: kit.metricsRouter({ registry }).')
  }
}

export interface MetricsRouterOptions {
  /** A prom-client Registry to add the kit's metrics to (and serve). Defaults to a new one. */
  registry: PromRegistry
}

/** `GET /`: the Prometheus text format. Mount it where your scraper looks, e.g. `/metrics`. */
export function createMetricsRouter(source: MetricsSource, options: Partial<MetricsRouterOptions> = {}): Router {
  const registry = options.registry ?? new (loadPromClient().Registry)()
  registerKitMetrics(registry, source)
  const router = express.Router()
  router.get('/', async function metrics(_req: Request, res: Response) {
    res.set('Content-Type', registry.contentType)
    res.set('Cache-Control', 'no-store')
    res.end(await registry.metrics())
  })
  return router
}
