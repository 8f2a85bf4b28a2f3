/**
 * The kit's own numbers, read from the example server's `GET /metrics` (Prometheus text, served by
 * `kit.metricsRouter()`): a poller for the state and the journal backlog during the run, a
 * snapshot of the counters when the load starts and one after the run's checks, and the report row
 * that sets them next to what the orchestrator measured from outside. The peer has no metrics.
 *
 * The text is parsed by a small parser of the exposition format (no dependency): one sample per
 * line, `name{label="value",…} value [timestamp]`, comments and blank lines skipped.
 */
import { Agent } from 'node:http'
import type { JobStreamResult } from './jobs.js'
import { getJson } from './load.js'
import type { OutputLine } from './servers.js'

const PREFIX = 'express_redis_kit_'

export interface PromSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  return Number(text)
}

/** Parses Prometheus' text format (0.0.4); lines it cannot read are skipped. */
export function parsePrometheus(text: string): PromSample[] {
  const samples: PromSample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0]
    if (!name) continue
    let i = name.length
    const labels: Record<string, string> = {}
    if (line[i] === '{') {
      i += 1
      let ok = false
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i += 1
        if (line[i] === '}') { i += 1; ok = true; break }
        const label = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0]
        if (!label || line[i + label.length] !== '=' || line[i + label.length + 1] !== '"') break
        i += label.length + 2
        let value = ''
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\') {
            const next = line[i + 1]
            value += next === 'n' ? '\n' : next ?? ''
            i += 2
          } else {
            value += line[i]
            i += 1
          }
        }
        if (line[i] !== '"') break
        i += 1
        labels[label] = value
      }
      if (!ok) continue
    }
    const valueText = line.slice(i).trim().split(/\s+/)[0]
    if (valueText === undefined || valueText === '') continue
    const value = parseValue(valueText)
    if (!Number.isNaN(value) || valueText === 'NaN') samples.push({ name, labels, value })
  }
  return samples
}

/** Sum of the samples of one metric whose labels match `filter`. */
function sum(samples: readonly PromSample[], name: string, filter: Readonly<Record<string, string>> = {}): number {
  let total = 0
  for (const s of samples) {
    if (s.name === name && Object.entries(filter).every(([label, wanted]) => s.labels[label] === wanted)) total += s.value
  }
  return total
}

/** Sums of one metric by the value of `key(labels)`. */
function by(samples: readonly PromSample[], name: string, key: (labels: Readonly<Record<string, string>>) => string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of samples) if (s.name === name) out[key(s.labels)] = (out[key(s.labels)] ?? 0) + s.value
  return out
}

/** The counters the report uses, summed over the labels it does not show. */
export interface KitCounters {
  /** When the scrape was answered (performance.now()). */
  readonly at: number
  readonly degradedSeconds: number
  /** `state_changes_total` by the state entered. */
  readonly stateChanges: Readonly<Record<string, number>>
  readonly replayed: number
  readonly replayRejected: number
  /** `journal_dropped_total` and `in_doubt_total` by feature. */
  readonly dropped: Readonly<Record<string, number>>
  readonly inDoubt: Readonly<Record<string, number>>
  /** `commands_total` by outcome. */
  readonly commands: Readonly<Record<string, number>>
  /** `cache_results_total` by result (all caches). */
  readonly cache: Readonly<Record<string, number>>
  /** `rate_limit_decisions_total` by `decision backend` (all limiters). */
  readonly rateLimit: Readonly<Record<string, number>>
  /** `jobs_total` by event (all queues). */
  readonly jobs: Readonly<Record<string, number>>
}

export function countersOf(samples: readonly PromSample[], at: number): KitCounters {
  return {
    at,
    degradedSeconds: sum(samples, `${PREFIX}degraded_seconds_total`),
    stateChanges: by(samples, `${PREFIX}state_changes_total`, (l) => l.state ?? ''),
    replayed: sum(samples, `${PREFIX}journal_replayed_total`),
    replayRejected: sum(samples, `${PREFIX}journal_replay_rejected_total`),
    dropped: by(samples, `${PREFIX}journal_dropped_total`, (l) => l.feature ?? ''),
    inDoubt: by(samples, `${PREFIX}in_doubt_total`, (l) => l.feature ?? ''),
    commands: by(samples, `${PREFIX}commands_total`, (l) => l.outcome ?? ''),
    cache: by(samples, `${PREFIX}cache_results_total`, (l) => l.result ?? ''),
    rateLimit: by(samples, `${PREFIX}rate_limit_decisions_total`, (l) => `${l.decision ?? ''} ${l.backend ?? ''}`),
    jobs: by(samples, `${PREFIX}jobs_total`, (l) => l.event ?? ''),
  }
}

/** One scrape of the kit's counters (null when `/metrics` did not answer 200 with text). */
export async function readKitCounters(port: number, timeoutMs = 5000): Promise<KitCounters | null> {
  try {
    const res = await getJson(port, '/metrics', timeoutMs)
    if (res.status !== 200 || typeof res.body !== 'string') return null
    return countersOf(parsePrometheus(res.body), performance.now())
  } catch {
    return null
  }
}

/** One poll of `/metrics` during the run. */
export interface MetricsPoll {
  readonly sent: number
  readonly at: number
  readonly status: number | 'timeout' | 'error'
  /** The state whose `express_redis_kit_state` sample is 1. */
  readonly state?: string
  /** `express_redis_kit_journal_pending_entries`. */
  readonly pending?: number
}

/** How often `/metrics` is polled: a scrape renders every series (histogram, queue depths), dearer than `/health`. */
export const METRICS_POLL_INTERVAL_MS = Number(process.env.CHAOS_METRICS_POLL_MS ?? 250)

/** Polls `/metrics` back to back (`intervalMs` after each answer), on a keep-alive agent of its own. */
export function pollMetrics(port: number, intervalMs: number, timeoutMs: number): { stop(): Promise<MetricsPoll[]> } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const polls: MetricsPoll[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const sent = performance.now()
      try {
        const res = await getJson(port, '/metrics', timeoutMs, agent)
        const at = performance.now()
        const samples = typeof res.body === 'string' ? parsePrometheus(res.body) : []
        const state = samples.find((s) => s.name === `${PREFIX}state` && s.value === 1)?.labels.state
        const pending = samples.find((s) => s.name === `${PREFIX}journal_pending_entries`)?.value
        polls.push({ sent, at, status: res.status, ...(state ? { state } : {}), ...(pending !== undefined ? { pending } : {}) })
      } catch (error) {
        const timedOut = error instanceof Error && error.message.startsWith('no answer')
        polls.push({ sent, at: performance.now(), status: timedOut ? 'timeout' : 'error' })
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      agent.destroy()
      return polls
    },
  }
}

/** What a kit run keeps of its metrics. */
export interface KitMetricsRun {
  readonly intervalMs: number
  readonly polls: readonly MetricsPoll[]
  /** Counters when the load started and after the run's checks (null: the scrape failed). */
  readonly start: KitCounters | null
  readonly end: KitCounters | null
  /** `[chaos-indoubt]` lines kit-server.ts printed from the load start on (one per `inDoubt` event). */
  readonly inDoubtLines: number
}

/** Counts the `[chaos-indoubt]` lines that arrived at or after `from`. */
export function inDoubtLines(lines: readonly OutputLine[], from: number): number {
  return lines.filter((line) => line.at >= from && line.text.startsWith('[chaos-indoubt]')).length
}

/** The stretches the polled state was `state`: [from, to) in performance.now() ms (to = next poll). */
export function stateStretches(polls: readonly MetricsPoll[], state: string): [number, number][] {
  const out: [number, number][] = []
  polls.forEach((poll, i) => {
    if (poll.state !== state) return
    const to = polls[i + 1]?.at ?? poll.at
    const last = out[out.length - 1]
    if (last && last[1] === poll.at) last[1] = to
    else out.push([poll.at, to])
  })
  return out
}

/** What the orchestrator measured itself, for the cross-checks. */
export interface Outside {
  readonly faultAt: number
  readonly returnAt: number
  /** `/health` polls: ms from the fault to degraded, from Redis answering again to ready (null: not seen). */
  readonly detectMs: number | null
  readonly backMs: number | null
  /** `/health` polls: peak `journal.pending` from the fault until drained. */
  readonly pendingPeak: number | null
  /** State changes the kit logged from the load start on. */
  readonly loggedDegraded: number
  readonly loggedReady: number
  /** `GET /api/scans/<target>` of the load answered (any status, late ones included). */
  readonly scanAnswered: number
  /** `/api/*` requests: the load's answered ones, plus the job stream's POSTs and D's DELETEs sent. */
  readonly apiRequests: number
  /** D: the burst (sent, acknowledged, acknowledged before Redis answered again); the "replayed N" of the kit's log. */
  readonly burst?: { readonly sent: number; readonly acknowledged: number; readonly acknowledgedInOutage: number; readonly replayedLogged: number | null }
  readonly jobs?: JobStreamResult
}

const s2 = (seconds: number): string => `${seconds.toFixed(2)} s`
const signed = (value: number): string => (value > 0 ? `+${value}` : value < 0 ? `−${-value}` : '0')

function delta(start: Readonly<Record<string, number>>, end: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const key of new Set([...Object.keys(start), ...Object.keys(end)])) {
    const value = Math.round((end[key] ?? 0) - (start[key] ?? 0))
    if (value !== 0) out[key] = value
  }
  return out
}

const total = (values: Readonly<Record<string, number>>): number => Object.values(values).reduce((a, b) => a + b, 0)

function list(values: Readonly<Record<string, number>>, order: readonly string[] = []): string {
  const keys = Object.keys(values).sort((a, b) => {
    const ia = order.indexOf(a)
    const ib = order.indexOf(b)
    return (ia < 0 ? order.length : ia) - (ib < 0 ? order.length : ib) || (values[b] ?? 0) - (values[a] ?? 0)
  })
  return keys.length === 0 ? 'none' : keys.map((key) => `${key} ${values[key]}`).join(', ')
}

/** The kit column of the row "The kit's own metrics (`/metrics`)": counter increases from the load start to after the run's checks. */
export function kitMetricsCell(m: KitMetricsRun, outside: Outside): string {
  if (!m.start || !m.end) return `\`/metrics\` could not be read (${m.start ? 'after the run' : 'at the load start'})`
  const { start, end } = m
  const offset = (at: number): string => `${at >= outside.faultAt ? '+' : '−'}${(Math.abs(at - outside.faultAt) / 1000).toFixed(2)} s`
  const parts: string[] = []

  // Time degraded: the counter, the polled state, /health, the fault window.
  const degraded = end.degradedSeconds - start.degradedSeconds
  const stretches = stateStretches(m.polls, 'degraded')
  const polledS = stretches.reduce((n, [from, to]) => n + (to - from), 0) / 1000
  const healthS = outside.detectMs !== null && outside.backMs !== null
    ? (outside.returnAt + outside.backMs - (outside.faultAt + outside.detectMs)) / 1000 : null
  const first = stretches[0]
  const last = stretches[stretches.length - 1]
  parts.push(`**degraded ${s2(degraded)}** (\`degraded_seconds_total\`); polled \`state\` degraded ${s2(polledS)}`
    + `${first && last ? ` in ${stretches.length} ${stretches.length === 1 ? 'stretch' : 'stretches'}, ${offset(first[0])} … ${offset(last[1])} from the fault` : ''}; `
    + `\`/health\` degraded → ready ${healthS === null ? 'not seen' : s2(healthS)}; fault → Redis answering again ${s2((outside.returnAt - outside.faultAt) / 1000)}`)

  const changes = delta(start.stateChanges, end.stateChanges)
  parts.push(`state changes ${total(changes)} (${list(changes, ['degraded', 'ready', 'connecting'])}; logged: ${outside.loggedDegraded} unavailable, ${outside.loggedReady} back)`)

  const replayed = Math.round(end.replayed - start.replayed)
  const rejected = Math.round(end.replayRejected - start.replayRejected)
  const dropped = delta(start.dropped, end.dropped)
  const pendings = m.polls.filter((p) => p.at >= outside.faultAt && typeof p.pending === 'number').map((p) => p.pending as number)
  let journal = `journal replayed ${replayed}${rejected > 0 ? ` (**${rejected} rejected**)` : ''} / dropped ${total(dropped)}${total(dropped) > 0 ? ` (${list(dropped)})` : ''}; `
    + `peak \`journal_pending_entries\` ${pendings.length > 0 ? Math.max(...pendings) : '–'} (\`/health\` peak ${outside.pendingPeak ?? '–'})`
  if (outside.burst) {
    const b = outside.burst
    const cacheDropped = dropped.cache ?? 0
    journal += `; DELETEs acknowledged ${b.acknowledged} (${b.acknowledgedInOutage} before Redis answered again) − cache dropped ${cacheDropped} = ${b.acknowledged - cacheDropped}, `
      + `replayed − that = ${signed(replayed - (b.acknowledged - cacheDropped))} (other journaled keys: visits, session, rate limit); log "replayed N" ${b.replayedLogged ?? '–'}`
  }
  parts.push(journal)

  const inDoubt = delta(start.inDoubt, end.inDoubt)
  parts.push(`in-doubt writes ${total(inDoubt)}${total(inDoubt) > 0 ? ` (${list(inDoubt)})` : ''} (\`inDoubt\` events printed: ${m.inDoubtLines})`)

  const commands = delta(start.commands, end.commands)
  parts.push(`Redis calls ${list(commands, ['ok', 'timeout', 'outage', 'refused', 'error'])}`)

  const cache = delta(start.cache, end.cache)
  parts.push(`cache ${list(cache, ['hit', 'miss', 'stale', 'revalidated', 'bypass', 'collapsed', 'error'])} (${total(cache)} lookups; the load got ${outside.scanAnswered} \`/api/scans\` answers)`)

  const rateLimit = delta(start.rateLimit, end.rateLimit)
  parts.push(`rate-limit decisions ${list(rateLimit, ['allowed redis', 'allowed memory', 'limited redis', 'limited memory'])} (${total(rateLimit)} in all; \`/api/*\` requests, the load's answered ones plus job POSTs and DELETEs sent: ${outside.apiRequests})`)

  const jobs = delta(start.jobs, end.jobs)
  const j = outside.jobs
  parts.push(`job events ${list(jobs, ['added', 'held', 'flushed', 'completed', 'failed'])}; added + flushed = ${(jobs.added ?? 0) + (jobs.flushed ?? 0)}`
    + `${j ? ` (job stream: ${j.acknowledged} acknowledged, ${j.held} answered held, ${j.processed} processed)` : ''}`)

  const answered = m.polls.filter((p) => p.status === 200)
  const scrapeMs = answered.map((p) => p.at - p.sent).sort((a, b) => a - b)
  const median = scrapeMs[Math.floor((scrapeMs.length - 1) / 2)]
  parts.push(`${m.polls.length} polls every ${m.intervalMs} ms, ${m.polls.length - answered.length} not answered 200, median scrape ${median === undefined ? '–' : `${median.toFixed(1)} ms`}`)
  return parts.join(' · ')
}

/** A kit run's metrics: the counters at the load start, the poller, and `finish()` for the counters after the run. */
export interface KitMetricsWatch {
  /** Stops the poller (the counters can still be read by `finish()`). */
  stopPolling(): Promise<void>
  /** Stops the poller if still running and scrapes the counters once more. */
  finish(lines: readonly OutputLine[]): Promise<KitMetricsRun>
}

/** Scrapes the counters now (the load start) and polls `/metrics` until stopped. */
export async function watchKitMetrics(port: number, timeoutMs: number, intervalMs = METRICS_POLL_INTERVAL_MS): Promise<KitMetricsWatch> {
  const from = performance.now()
  const start = await readKitCounters(port, timeoutMs)
  const poller = pollMetrics(port, intervalMs, timeoutMs)
  let stopped: Promise<MetricsPoll[]> | undefined
  const stop = (): Promise<MetricsPoll[]> => (stopped ??= poller.stop())
  return {
    async stopPolling() { await stop() },
    async finish(lines) {
      const polls = await stop()
      const end = await readKitCounters(port, timeoutMs)
      return { intervalMs, polls, start, end, inDoubtLines: inDoubtLines(lines, start?.at ?? from) }
    },
  }
}
