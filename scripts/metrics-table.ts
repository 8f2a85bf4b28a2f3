/**
 * Prints the README's table of metrics from the code's own MetricInfo lists, so the table is
 * exact: `node --import tsx scripts/metrics-table.ts`. test/unit/metrics-readme.test.ts checks the
 * README holds this very table.
 */
import { Metrics, type MetricInfo } from '../lib/core/metrics.js'
import { otelName } from '../lib/metrics/otel.js'
import { counters, GAUGES, histograms } from '../lib/metrics/source.js'

/** Every metric the kit exports, in the order of the table. */
export function metricInfos(): MetricInfo[] {
  const metrics = new Metrics()
  return [GAUGES.state, GAUGES.degraded, ...counters(metrics).map((c) => c.info), ...histograms(metrics).map((h) => h.info),
    GAUGES.journalEntries, GAUGES.journalBytes, GAUGES.memoryEntries, GAUGES.memoryBytes, GAUGES.jobsWaiting]
}

export const TABLE_HEADER = '| Prometheus name | OpenTelemetry name | Type | Unit | Labels | Meaning |'

export function metricsTable(): string {
  const rows = metricInfos().map((info) => {
    const labels = info.labels.length === 0 ? '—' : info.labels.map((label) => `\`${label}\``).join(', ')
    return `| \`${info.name}\` | \`${otelName(info)}\` | ${info.type} | \`${info.unit}\` | ${labels} | ${info.help.replace(/\|/g, '\\|')} |`
  })
  return [TABLE_HEADER, '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n')
}

if (require.main === module) console.log(metricsTable())
