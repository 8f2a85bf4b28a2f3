/** Observability: `kit.stats()`, `kit.metricsRouter()` (Prometheus) and OpenTelemetry, all read from one registry. */
export { createMetricsRouter, registerKitMetrics, type MetricsRouterOptions, type PromRegistry } from './prometheus.js'
export { inSpan, startOpenTelemetry } from './otel.js'
export type { MetricsSource } from './source.js'
export { statsOf, type KitStats } from './stats.js'
