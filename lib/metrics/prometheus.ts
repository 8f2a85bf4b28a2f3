/**
 * Prometheus: the kit's metrics in prom-client's registry (the app's own, or a new one), read
 * from the kit's counters at scrape time — nothing is done per request for Prometheus.
 * prom-client is an optional peer dependency: loaded only when metrics are asked for.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express'
import { LATENCY_BUCKETS, type MetricInfo } from '../core/metrics.js'
import { invalidOption } from '../core/errors.js'
import { Options } from '../core/options.js'
import { optionalPeer } from '../core/peers.js'
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

/**
 * Adds every kit metric to `registry`. Metric names are fixed, so one registry holds one kit's
 * metrics: adding them twice (a second router, a second kit) throws ERR_KIT_INVALID_OPTION.
 */
export function registerKitMetrics(registry: PromRegistry, source: MetricsSource): void {
  const { metrics } = source
  const all: [MetricInfo, () => PromValue[] | Promise<PromValue[]>][] = [
    ...counters(metrics).map((counter): [MetricInfo, () => PromValue[]] => [counter.info, () => counter.series()]),
    [metrics.latency.info, () => histogramValues(source)],
    [GAUGES.state, () => STATES.map((state) => ({ labels: { state }, value: source.state() === state ? 1 : 0 }))],
    [GAUGES.degraded, () => [{ labels: {}, value: metrics.degradedSeconds() }]],
    [GAUGES.journalEntries, () => [{ labels: {}, value: source.journal().entries }]],
    [GAUGES.journalBytes, () => [{ labels: {}, value: source.journal().bytes }]],
    [GAUGES.memoryEntries, () => Object.entries(source.memory()).map(([feature, size]) => ({ labels: { feature }, value: size.entries }))],
    [GAUGES.memoryBytes, () => Object.entries(source.memory()).map(([feature, size]) => ({ labels: { feature }, value: size.bytes }))],
  ]
  if (source.queues) {
    const queues = source.queues.bind(source)
    all.push([GAUGES.jobsWaiting, async () => Object.entries(await queues()).flatMap(([queue, states]) =>
      Object.entries(states).map(([state, value]) => ({ labels: { queue, state }, value })))])
  }
  // All checked before any is added: a refused registry is left as it was.
  for (const [info] of all) {
    if (registry.getSingleMetric(info.name) !== undefined) {
      throw invalidOption('metricsRouter `registry`', `already has a metric named ${info.name}`,
        'The kit\'s metrics can be added to a registry once: create kit.metricsRouter() once and mount it where needed, or give each kit its own registry.')
    }
  }
  for (const [info, values] of all) registry.registerMetric(collector(info, values))
}

interface PromClient {
  Registry: new () => PromRegistry
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
  /**
   * A prom-client `Registry` to add the kit's metrics to and serve (with the app's own metrics,
   * e.g. `collectDefaultMetrics({ register })`). The kit's metrics can be added to one registry
   * once. Defaults to a new registry (prom-client must be installed).
   */
  registry: PromRegistry
}

const options = new Options('metricsRouter')

function parseRegistry(value: unknown): PromRegistry | undefined {
  if (value === undefined) return undefined
  const methods = ['registerMetric', 'getSingleMetric', 'metrics'] as const
  if (typeof value !== 'object' || value === null || methods.some((method) => typeof (value as Record<string, unknown>)[method] !== 'function')) {
    options.fail('registry', 'is not a prom-client Registry', "Pass `new Registry()` or `register` from 'prom-client'.")
  }
  return value as PromRegistry
}

/** `GET /`: the Prometheus text format. Mount it where your scraper looks, e.g. `/metrics`. */
export function createMetricsRouter(source: MetricsSource, raw: Readonly<Partial<MetricsRouterOptions>> = {}): Router {
  const given = options.object<MetricsRouterOptions>(raw, 'metricsRouter(options)', 'kit.metricsRouter() or kit.metricsRouter({ registry })')
  options.known(given, ['registry'], { register: 'registry' })
  const registry = parseRegistry(given.registry) ?? new (loadPromClient().Registry)()
  registerKitMetrics(registry, source)
  const router = express.Router()
  // Express 4 does not catch a rejected handler: the error is passed on by hand.
  router.get('/', function metrics(_req: Request, res: Response, next: NextFunction) {
    registry.metrics().then((text) => {
      res.set('Content-Type', registry.contentType)
      res.set('Cache-Control', 'no-store')
      res.end(text)
    }, next)
  })
  return router
}
