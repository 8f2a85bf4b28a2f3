/**
 * Per-phase statistics of one chaos run and the markdown report. A request that was in flight at
 * any moment of the outage (from the fault until Redis answers again) counts in the outage phase,
 * even when it was sent just before the fault or its error arrives after Redis is back; "before"
 * and "after" hold only requests that lived entirely outside it.
 */
import type { HealthPoll, Route, Sample } from './load.js'
import type { Contender } from './servers.js'

export type Scenario = 'kill' | 'stop'
export const PHASES = ['before', 'outage', 'after'] as const
export type Phase = (typeof PHASES)[number]

export const SCENARIO_TITLES: Record<Scenario, string> = {
  kill: 'A: kill -9 Redis, restart it on the same port',
  stop: 'B: SIGSTOP Redis (hung), then SIGCONT',
}

export interface RunResult {
  readonly contender: Contender
  readonly scenario: Scenario
  /** 1-minute load average of the machine when the load started. */
  readonly loadAverage: number
  /** Requests still unanswered when the load stopped (not in `samples`). */
  readonly inFlightAtEnd: number
  /** performance.now() of load start, fault, Redis answering again, and load end. */
  readonly t0: number
  readonly faultAt: number
  readonly returnAt: number
  readonly endAt: number
  readonly timeoutMs: number
  readonly samples: readonly Sample[]
  readonly polls: readonly HealthPoll[]
  /** Checks after the load: a fresh GET /me with the cookie, and the visit counter. */
  readonly meAfter: number
  readonly visitsAnswered: number
  readonly visitsInRedis: number | null
  /** The peer's logged unhandled rejections (apicache's fire-and-forget writes). */
  readonly unhandledRejections: number
}

export interface PhaseStats {
  readonly requests: number
  readonly ok: number
  readonly okPerSecond: number
  readonly failures: number
  /** e.g. `{ 'timeout': 10, '500 /me': 3 }`. */
  readonly failureKinds: Readonly<Record<string, number>>
  readonly p50: number
  readonly p99: number
  readonly max: number
  /** True when `max` is a request nobody answered (autocannon's backstop): the real latency is at least that. */
  readonly maxIsTimeout: boolean
}

/** Every non-2xx/3xx answer is a failure: 5xx, but also 401 (the cookie is always valid) and 429. */
export function isFailure(sample: Sample): boolean {
  return sample.kind !== 'response' || sample.status < 200 || sample.status >= 400
}

function failureKind(sample: Sample): string {
  if (sample.kind === 'timeout') return sample.censored ? 'no answer' : `timeout ${routeName(sample.route)}`
  if (sample.kind === 'error') return sample.error ?? 'socket error'
  return `${sample.status} ${routeName(sample.route)}`
}

function routeName(route: Route | 'unknown'): string {
  return route === 'scan' ? '/api/scans' : route === 'visits' ? '/api/visits' : route === 'me' ? '/me' : '?'
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0
}

export function phaseOf(run: RunResult, sample: Sample): Phase {
  return sample.end < run.faultAt ? 'before' : sample.start >= run.returnAt ? 'after' : 'outage'
}

export function phaseStats(run: RunResult, phase: Phase): PhaseStats {
  const inPhase = run.samples.filter((s) => phaseOf(run, s) === phase)
  const seconds = (phase === 'before' ? run.faultAt - run.t0 : phase === 'outage' ? run.returnAt - run.faultAt : run.endAt - run.returnAt) / 1000
  const failureKinds: Record<string, number> = {}
  let failures = 0
  for (const sample of inPhase) {
    if (!isFailure(sample)) continue
    failures++
    const kind = failureKind(sample)
    failureKinds[kind] = (failureKinds[kind] ?? 0) + 1
  }
  const timed = inPhase.filter((s) => s.kind !== 'error')
  const latencies = timed.map((s) => s.latencyMs).sort((a, b) => a - b)
  const max = latencies[latencies.length - 1] ?? 0
  const ok = inPhase.length - failures
  return {
    requests: inPhase.length, ok, okPerSecond: seconds > 0 ? ok / seconds : 0, failures, failureKinds,
    p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max,
    maxIsTimeout: timed.some((s) => s.censored === true && s.latencyMs === max),
  }
}

export interface Detection {
  /** ms from the fault until the server reported it (kit: state degraded; peer: /health/redis 503). */
  readonly detectMs: number | null
  /** ms from Redis answering again until the server was back on it (kit: state ready; peer: /health/redis 200). */
  readonly backMs: number | null
  /** ms after Redis answered again until the last failed request of the load ended (null: none after). */
  readonly lastFailureMs: number | null
}

export function detection(run: RunResult): Detection {
  const after = run.polls.filter((p) => p.at >= run.faultAt)
  let detected: HealthPoll | undefined
  if (run.contender === 'kit') detected = after.find((p) => p.state === 'degraded')
  else detected = after.find((p) => p.status === 503)
  const back = run.contender === 'kit'
    ? after.find((p) => p.at >= (detected?.at ?? run.faultAt) && p.at >= run.returnAt && p.state === 'ready')
    : after.find((p) => p.at >= run.returnAt && p.status === 200)
  const lastFailure = run.samples.filter((s) => isFailure(s) && s.end >= run.returnAt).reduce((m, s) => Math.max(m, s.end), -Infinity)
  return {
    detectMs: detected && detected.at < run.returnAt ? detected.at - run.faultAt : null,
    backMs: back ? back.at - run.returnAt : null,
    lastFailureMs: Number.isFinite(lastFailure) ? lastFailure - run.returnAt : null,
  }
}

// ---------------------------------------------------------------- markdown

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))
const seconds = (value: number | null, none: string): string => (value === null ? none : `${(value / 1000).toFixed(2)} s`)

function kinds(stats: PhaseStats): string {
  const entries = Object.entries(stats.failureKinds).sort((a, b) => b[1] - a[1])
  return entries.length === 0 ? '' : entries.map(([kind, count]) => `${kind} ×${count}`).join(', ')
}

export interface ReportContext {
  readonly durationS: number
  readonly connections: number
  readonly timeoutS: number
  readonly targets: number
  readonly pollIntervalMs: number
  readonly peerPollTimeoutMs: number
  readonly svgName: string
  readonly cpus: number
}

export function renderReport(runs: readonly RunResult[], context: ReportContext): string {
  const lines: string[] = [
    `## Chaos benchmark: the example server (express-redis-kit) vs the raw peer stack`,
    '',
    `autocannon, ${context.connections} connections, ${context.durationS} s per run, request timeout ${context.timeoutS} s; `
    + `each connection cycles \`GET /api/scans/host<n>.example\` (${context.targets} targets, warmed), \`GET /api/visits\`, \`GET /me\`, `
    + 'all with one logged-in session cookie. Own redis-server per run (append-only file, fsync always). '
    + `Fault at ${(runs[0] ? (runs[0].faultAt - runs[0].t0) / 1000 : 0).toFixed(1)} s, Redis back at about ${(runs[0] ? (runs[0].returnAt - runs[0].t0) / 1000 : 0).toFixed(1)} s.`,
    '',
    'Cells are **kit / peer**. A request in flight at any moment between the fault and Redis answering again counts in the outage phase. '
    + `Failures = any 5xx, any answer slower than the ${context.timeoutS} s client timeout ("timeout"), socket error, `
    + 'and any 401 or 429 (every request carries a valid session and the limit is out of reach). '
    + 'Latencies are as measured, slow answers included.',
    '',
  ]
  for (const scenario of ['kill', 'stop'] as const) {
    const kit = runs.find((r) => r.scenario === scenario && r.contender === 'kit')
    const peer = runs.find((r) => r.scenario === scenario && r.contender === 'peer')
    if (!kit && !peer) continue
    lines.push(`### ${SCENARIO_TITLES[scenario]}`, '')
    lines.push('| Phase | Requests | OK req/s | Failures | p50 ms | p99 ms | max ms |')
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    const notes: string[] = []
    for (const phase of PHASES) {
      const k = kit ? phaseStats(kit, phase) : undefined
      const p = peer ? phaseStats(peer, phase) : undefined
      const pair = (f: (s: PhaseStats) => string): string => `${k ? f(k) : '–'} / ${p ? f(p) : '–'}`
      const maxCell = (s: PhaseStats): string => `${s.maxIsTimeout ? '≥' : ''}${ms(s.max)}`
      lines.push(`| ${phase} | ${pair((s) => String(s.requests))} | ${pair((s) => s.okPerSecond.toFixed(0))} | `
        + `${pair((s) => (s.failures > 0 ? `**${s.failures}**` : '0'))} | ${pair((s) => ms(s.p50))} | ${pair((s) => ms(s.p99))} | ${pair(maxCell)} |`)
      if (k && k.failures > 0) notes.push(`kit ${phase}: ${kinds(k)}`)
      if (p && p.failures > 0) notes.push(`peer ${phase}: ${kinds(p)}`)
    }
    lines.push('')
    const dk = kit ? detection(kit) : undefined
    const dp = peer ? detection(peer) : undefined
    lines.push('| | kit | peer |', '| --- | --- | --- |')
    lines.push(`| Outage detected after (kit: \`/health\` says degraded; peer: \`/health/redis\` answers 503) | ${dk ? seconds(dk.detectMs, 'not seen') : '–'} | ${dp ? seconds(dp.detectMs, 'never (PING waits in the offline queue)') : '–'} |`)
    lines.push(`| Back on Redis after it answered again (kit: \`/health\` says ready; peer: \`/health/redis\` 200) | ${dk ? seconds(dk.backMs, 'not seen') : '–'} | ${dp ? seconds(dp.backMs, 'not seen') : '–'} |`)
    lines.push(`| Last failed request ended, after Redis answered again | ${dk ? seconds(dk.lastFailureMs, 'none') : '–'} | ${dp ? seconds(dp.lastFailureMs, 'none') : '–'} |`)
    lines.push(`| \`GET /me\` with the same cookie after the run | ${kit ? kit.meAfter : '–'} | ${peer ? peer.meAfter : '–'} |`)
    lines.push(`| \`visitor_count\` in Redis after the run / \`/api/visits\` answered 2xx | ${kit ? `${kit.visitsInRedis ?? '?'} / ${kit.visitsAnswered}` : '–'} | ${peer ? `${peer.visitsInRedis ?? '?'} / ${peer.visitsAnswered}` : '–'} |`)
    if (peer && peer.unhandledRejections > 0) notes.push(`peer logged ${peer.unhandledRejections} unhandled promise rejections (apicache writes; a default Node process would have exited)`)
    lines.push('')
    if (notes.length > 0) lines.push(`Failures by kind: ${notes.join('; ')}.`, '')
  }
  lines.push(
    'Notes:',
    `- kit = \`examples/server.ts\` (\`createApp()\`, bound to 127.0.0.1 by \`bench/chaos/kit-server.ts\`); peer = \`bench/peer-server.ts\`: the same routes on ONE ioredis client with default settings `
    + '(offline queue on, `maxRetriesPerRequest` 20, no `commandTimeout`): apicache 1.6.3, express-session + connect-redis 8.1.0, express-rate-limit + rate-limit-redis, helmet. '
    + 'apicache was written for redis@3 and only uses Redis while `redisClient.connected` is true, so the ioredis client got a `connected` getter (`status === \'ready\'`); '
    + 'the peer also has an `error` listener and an `unhandledRejection` logger so it survives the outage. Nothing else is changed.',
    `- Load is closed-loop: a request that hangs holds its connection, so few requests are *sent* during a hang; the OK req/s column and the plot show the lost throughput. `
    + `The ${context.timeoutS} s client timeout is applied to the measured latencies: autocannon's own timeout is set beyond the run, because after a timeout it reconnects and, `
    + 'if the server still hangs, misreads the next responses (status undefined, then false timeouts), which we saw against the peer. So a client keeps waiting instead of retrying. '
    + `Requests still unanswered when the load stopped are not counted: ${runs.map((r) => `${r.contender} ${r.scenario} ${r.inFlightAtEnd}`).join(', ')}.`,
    `- Detection is read by polling every ${context.pollIntervalMs} ms on a separate keep-alive connection (kit: \`GET /health\`; peer: \`GET /health/redis\`, which PINGs, each poll abandoned after ${context.peerPollTimeoutMs} ms). `
    + '"Redis answered again" is when the restarted server first answered PING (A) or the SIGCONT (B).',
    `- \`visitor_count\`: the kit replays increments made during the outage when Redis is back; an increment that was sent to a hung Redis and timed out is "in doubt" and not replayed (it runs when Redis resumes). Requests still in flight when the load stops are not counted as answered.`,
    `- Machine: ${context.cpus} CPUs shared with other work; 1-minute load average at the start of each run: `
    + `${runs.map((r) => `${r.contender} ${r.scenario} ${r.loadAverage.toFixed(1)}`).join(', ')}. Absolute req/s move with that load; compare within a phase of one run pair, and the shape over time.`,
    `- Plot: [${context.svgName}](${context.svgName}) (p99 latency and OK req/s per 500 ms, outage shaded).`,
    '',
  )
  return lines.join('\n')
}
