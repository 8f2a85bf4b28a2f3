/** Observability: `kit.stats()`, `kit.metricsRouter()` (Prometheus) and OpenTelemetry, all read from one registry. */
export { createMetricsRouter, registerKitMetrics, type MetricsRouterOptions, type PromRegistry } from './prometheus.js'
export { otelName, startOpenTelemetry, type OpenTelemetryHandle } from './otel.js'
export { counters, GAUGES, histograms, kitSource, type MetricsSource, type QueueSummary } from './source.js'
export { statsOf, type KitStats } from './stats.js'
