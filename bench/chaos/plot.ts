/**
 * A hand-written SVG of the chaos runs: one row per scenario, p99 latency (log scale) and
 * OK/failed requests per second per 500 ms bucket, kit vs peer, outage shaded; along the top of
 * each panel, a strip where the kit was degraded by its own `express_redis_kit_state`, polled from `/metrics`.
 */
import { stateStretches } from './kit-metrics.js'
import { isFailure, quantile, SCENARIO_TITLES, SCENARIOS, type RunResult, type Scenario } from './stats.js'

const BUCKET_MS = 500
const COLORS = { kit: '#1f6fd1', peer: '#d9480f' } as const
const LABELS = { kit: 'kit (examples/server.ts)', peer: 'peer stack (bench/peer-server.ts)' } as const

interface Bucket {
  readonly t: number
  readonly p99: number | null
  readonly okPerS: number
  readonly failedPerS: number
}

/** Buckets by completion time: what a client saw, when it saw it. */
function buckets(run: RunResult, durationS: number): Bucket[] {
  const count = Math.ceil((durationS * 1000) / BUCKET_MS)
  const latencies: number[][] = Array.from({ length: count }, () => [])
  const ok = new Array<number>(count).fill(0)
  const failed = new Array<number>(count).fill(0)
  for (const sample of run.samples) {
    const index = Math.floor((sample.end - run.t0) / BUCKET_MS)
    if (index < 0 || index >= count) continue
    if (sample.kind !== 'error') latencies[index]?.push(sample.latencyMs)
    if (isFailure(sample)) failed[index] = (failed[index] ?? 0) + 1
    else ok[index] = (ok[index] ?? 0) + 1
  }
  return latencies.map((values, i) => ({
    t: ((i + 0.5) * BUCKET_MS) / 1000,
    p99: values.length === 0 ? null : quantile(values.sort((a, b) => a - b), 0.99),
    okPerS: (ok[i] ?? 0) * (1000 / BUCKET_MS),
    failedPerS: (failed[i] ?? 0) * (1000 / BUCKET_MS),
  }))
}

function niceCeil(value: number): number {
  if (value <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function formatMs(value: number): string {
  if (value >= 1000) return `${value / 1000} s`
  return `${value} ms`
}

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

interface Panel {
  readonly x: number
  readonly y: number
  readonly w: number
  readonly h: number
}

/** Polyline path over points; `null` values break the line. */
function path(points: ReadonlyArray<readonly [number, number] | null>): string {
  let d = ''
  let pen = false
  for (const point of points) {
    if (!point) { pen = false; continue }
    d += `${pen ? 'L' : 'M'}${point[0].toFixed(1)},${point[1].toFixed(1)}`
    pen = true
  }
  return d
}

function frame(out: string[], panel: Panel, durationS: number, outage: readonly [number, number], title: string, yLabel: string): (t: number) => number {
  const sx = (t: number): number => panel.x + (t / durationS) * panel.w
  out.push(`<rect x="${sx(outage[0]).toFixed(1)}" y="${panel.y}" width="${(sx(outage[1]) - sx(outage[0])).toFixed(1)}" height="${panel.h}" fill="#9aa0a6" fill-opacity="0.22"/>`)
  out.push(`<rect x="${panel.x}" y="${panel.y}" width="${panel.w}" height="${panel.h}" fill="none" stroke="#444" stroke-width="1"/>`)
  const step = durationS <= 12 ? 1 : durationS <= 40 ? 5 : 10
  for (let t = 0; t <= durationS + 1e-9; t += step) {
    out.push(`<line x1="${sx(t).toFixed(1)}" y1="${panel.y + panel.h}" x2="${sx(t).toFixed(1)}" y2="${panel.y + panel.h + 4}" stroke="#444"/>`)
    out.push(`<text x="${sx(t).toFixed(1)}" y="${panel.y + panel.h + 16}" text-anchor="middle" class="tick">${t}</text>`)
  }
  out.push(`<text x="${panel.x + panel.w / 2}" y="${panel.y + panel.h + 32}" text-anchor="middle" class="axis">time since load start (s)</text>`)
  out.push(`<text x="${panel.x - 64}" y="${panel.y + panel.h / 2}" text-anchor="middle" class="axis" transform="rotate(-90 ${panel.x - 64} ${panel.y + panel.h / 2})">${esc(yLabel)}</text>`)
  out.push(`<text x="${panel.x}" y="${panel.y - 8}" class="panel">${esc(title)}</text>`)
  return sx
}

function latencyPanel(out: string[], panel: Panel, runs: readonly RunResult[], series: ReadonlyMap<RunResult, Bucket[]>, durationS: number, outage: readonly [number, number]): void {
  const sx = frame(out, panel, durationS, outage, 'p99 latency per 500 ms, log scale (gap: nothing completed)', 'p99 latency')
  const values = runs.flatMap((run) => (series.get(run) ?? []).map((b) => b.p99).filter((v): v is number => v !== null && v > 0))
  const low = Math.floor(Math.log10(Math.max(0.1, Math.min(1, ...values))))
  const peak = Math.log10(Math.max(100, ...values))
  // Headroom above the highest point, so a 10 s timeout is not drawn on the frame.
  const high = Math.max(Math.ceil(peak), peak + 0.25)
  const sy = (v: number): number => panel.y + panel.h - ((Math.log10(Math.max(v, 10 ** low)) - low) / (high - low)) * panel.h
  for (let power = low; power <= Math.floor(high); power++) {
    const y = sy(10 ** power)
    out.push(`<line x1="${panel.x}" y1="${y.toFixed(1)}" x2="${panel.x + panel.w}" y2="${y.toFixed(1)}" stroke="#ddd"/>`)
    out.push(`<text x="${panel.x - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" class="tick">${formatMs(10 ** power)}</text>`)
  }
  for (const run of runs) {
    const points = (series.get(run) ?? []).map((b) => (b.p99 === null ? null : [sx(b.t), sy(b.p99)] as const))
    out.push(`<path d="${path(points)}" fill="none" stroke="${COLORS[run.contender]}" stroke-width="1.8"/>`)
    // Dots too: a bucket between two empty ones (a lone burst of timeouts) has no line to show it.
    for (const point of points) {
      if (point) out.push(`<circle cx="${point[0].toFixed(1)}" cy="${point[1].toFixed(1)}" r="2.2" fill="${COLORS[run.contender]}"/>`)
    }
  }
}

function throughputPanel(out: string[], panel: Panel, runs: readonly RunResult[], series: ReadonlyMap<RunResult, Bucket[]>, durationS: number, outage: readonly [number, number]): void {
  const sx = frame(out, panel, durationS, outage, 'requests per second, per 500 ms (solid: OK; dashed, circled: failed)', 'requests / s')
  const top = niceCeil(Math.max(10, ...runs.flatMap((run) => (series.get(run) ?? []).flatMap((b) => [b.okPerS, b.failedPerS]))) * 1.05)
  const sy = (v: number): number => panel.y + panel.h - (v / top) * panel.h
  for (let i = 0; i <= 4; i++) {
    const value = (top / 4) * i
    out.push(`<line x1="${panel.x}" y1="${sy(value).toFixed(1)}" x2="${panel.x + panel.w}" y2="${sy(value).toFixed(1)}" stroke="#ddd"/>`)
    out.push(`<text x="${panel.x - 6}" y="${(sy(value) + 4).toFixed(1)}" text-anchor="end" class="tick">${Number(value.toFixed(1))}</text>`)
  }
  for (const run of runs) {
    const buckets = series.get(run) ?? []
    out.push(`<path d="${path(buckets.map((b) => [sx(b.t), sy(b.okPerS)] as const))}" fill="none" stroke="${COLORS[run.contender]}" stroke-width="1.8"/>`)
    const failing = buckets.filter((b) => b.failedPerS > 0)
    if (failing.length > 0) {
      out.push(`<path d="${path(buckets.map((b) => [sx(b.t), sy(b.failedPerS)] as const))}" fill="none" stroke="${COLORS[run.contender]}" stroke-width="1.6" stroke-dasharray="5 3"/>`)
      // A handful of failures is invisible next to thousands of OK req/s: mark and count them.
      const labelled = failing.length <= 6 ? failing : [failing[0] as Bucket]
      for (const b of failing) {
        out.push(`<circle cx="${sx(b.t).toFixed(1)}" cy="${sy(b.failedPerS).toFixed(1)}" r="4" fill="none" stroke="${COLORS[run.contender]}" stroke-width="1.6"/>`)
      }
      for (const b of labelled) {
        const count = failing.length <= 6 ? b.failedPerS * (BUCKET_MS / 1000) : failing.reduce((n, f) => n + f.failedPerS * (BUCKET_MS / 1000), 0)
        out.push(`<text x="${(sx(b.t) + 6).toFixed(1)}" y="${(sy(b.failedPerS) - 8).toFixed(1)}" class="tick" fill="${COLORS[run.contender]}" style="fill:${COLORS[run.contender]}">${count} failed</text>`)
      }
    }
  }
}

const STRIP_H = 6

/** The kit degraded, by its polled `express_redis_kit_state`: a strip along the top of the panel. */
function stateStrip(out: string[], panel: Panel, runs: readonly RunResult[], durationS: number): void {
  const sx = (t: number): number => panel.x + (Math.min(durationS, Math.max(0, t)) / durationS) * panel.w
  for (const run of runs) {
    if (!run.kitMetrics) continue
    for (const [from, to] of stateStretches(run.kitMetrics.polls, 'degraded')) {
      const x0 = sx((from - run.t0) / 1000)
      const x1 = sx((to - run.t0) / 1000)
      if (x1 - x0 <= 0) continue
      out.push(`<rect x="${x0.toFixed(1)}" y="${panel.y + 1}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${STRIP_H}" fill="${COLORS[run.contender]}" fill-opacity="0.75"/>`)
    }
  }
}

/** What the plot's heading and its shaded band say; the defaults describe the single-server scenarios A–D. */
export interface PlotLabels {
  readonly title: string
  readonly shaded: string
}

const SINGLE_SERVER_LABELS: PlotLabels = {
  title: 'Chaos benchmark: express-redis-kit example vs raw peer stack under load',
  shaded: 'Redis down (A, D), hung (B) or slow (C): from the fault until Redis answers again (C: until the delay is back to 0)',
}

export function renderSvg(runs: readonly RunResult[], durationS: number, labels: PlotLabels = SINGLE_SERVER_LABELS): string {
  const scenarios = SCENARIOS.filter((s) => runs.some((r) => r.scenario === s))
  const width = 1200
  const panelW = 470
  const panelH = 230
  const rowH = panelH + 110
  const withStrip = runs.some((run) => run.kitMetrics)
  const top = withStrip ? 112 : 96
  const height = top + scenarios.length * rowH + 10
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.tick{font-size:11px;fill:#333}.axis{font-size:12px;fill:#222}.panel{font-size:13px;fill:#222}.row{font-size:15px;font-weight:bold;fill:#111}.legend{font-size:13px;fill:#222}</style>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="24" y="28" font-size="18" font-weight="bold" fill="#111">${esc(labels.title)} (${durationS} s runs)</text>`,
  ]
  // Legend
  let lx = 24
  for (const contender of ['kit', 'peer'] as const) {
    out.push(`<line x1="${lx}" y1="52" x2="${lx + 28}" y2="52" stroke="${COLORS[contender]}" stroke-width="2.5"/>`)
    out.push(`<text x="${lx + 34}" y="56" class="legend">${esc(LABELS[contender])}</text>`)
    lx += 300
  }
  out.push(`<line x1="${lx}" y1="52" x2="${lx + 28}" y2="52" stroke="#555" stroke-width="1.6" stroke-dasharray="5 3"/>`)
  out.push(`<text x="${lx + 34}" y="56" class="legend">failed req/s (5xx, 401, 429, timeouts, socket errors)</text>`)
  out.push(`<rect x="24" y="66" width="28" height="12" fill="#9aa0a6" fill-opacity="0.35"/>`)
  out.push(`<text x="58" y="77" class="legend">${esc(labels.shaded)}</text>`)
  if (withStrip) {
    out.push(`<rect x="24" y="86" width="28" height="${STRIP_H}" fill="${COLORS.kit}" fill-opacity="0.75"/>`)
    out.push(`<text x="58" y="93" class="legend">${esc('kit degraded, by its own metric express_redis_kit_state (polled from /metrics; strip along the top of each panel)')}</text>`)
  }

  scenarios.forEach((scenario: Scenario, row) => {
    const inRow = runs.filter((r) => r.scenario === scenario)
    const outage: [number, number] = [
      Math.min(...inRow.map((r) => (r.faultAt - r.t0) / 1000)),
      Math.max(...inRow.map((r) => (r.returnAt - r.t0) / 1000)),
    ]
    const series = new Map(inRow.map((run) => [run, buckets(run, durationS)] as const))
    const y = top + row * rowH
    out.push(`<text x="24" y="${y + 16}" class="row">${esc(SCENARIO_TITLES[scenario])}</text>`)
    const left: Panel = { x: 90, y: y + 44, w: panelW, h: panelH }
    const right: Panel = { x: 90 + panelW + 110, y: y + 44, w: panelW, h: panelH }
    latencyPanel(out, left, inRow, series, durationS, outage)
    throughputPanel(out, right, inRow, series, durationS, outage)
    stateStrip(out, left, inRow, durationS)
    stateStrip(out, right, inRow, durationS)
  })
  out.push('</svg>', '')
  return out.join('\n')
}
