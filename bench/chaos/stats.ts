/**
 * Per-phase statistics of one chaos run and the markdown report. A request that was in flight at
 * any moment of the outage (from the fault until Redis answers again; in C, the slow window)
 * counts in the outage phase, even when it was sent just before the fault or its error arrives
 * after Redis is back; "before" and "after" hold only requests that lived entirely outside it.
 * In the failover scenarios (E, F) the outage lasts from the kill until the topology reports the
 * new master.
 */
import { failoverRows, type FailoverInfo } from './failover.js'
import { jobRows, type JobStreamResult } from './jobs.js'
import { kitMetricsCell, type KitMetricsRun } from './kit-metrics.js'
import type { HealthPoll, Route, Sample } from './load.js'
import type { Contender, EldWindow } from './servers.js'

/** The scenarios on a Redis Cluster or behind Sentinel (bench/chaos/topology-run.ts): a master killed, a replica promoted. */
export type FailoverScenario = 'cluster-kill' | 'sentinel-kill'
export type Scenario = 'kill' | 'stop' | 'slow' | 'journal' | FailoverScenario
export const SCENARIOS: readonly Scenario[] = ['kill', 'stop', 'slow', 'journal', 'cluster-kill', 'sentinel-kill']
export const FAILOVER_SCENARIOS: readonly FailoverScenario[] = ['cluster-kill', 'sentinel-kill']
export const isFailover = (scenario: Scenario): scenario is FailoverScenario => (FAILOVER_SCENARIOS as readonly Scenario[]).includes(scenario)
export const PHASES = ['before', 'outage', 'after'] as const
export type Phase = (typeof PHASES)[number]

export const SCENARIO_TITLES: Record<Scenario, string> = {
  kill: 'A: kill -9 Redis, restart it on the same port',
  stop: 'B: SIGSTOP Redis (hung), then SIGCONT',
  slow: 'C: slow Redis: every reply delayed (LatencyProxy), then back to 0',
  journal: 'D: kill -9 Redis, a burst of cache invalidations fills the outage journal, restart from the AOF',
  'cluster-kill': 'E: Redis Cluster (3 masters + 1 replica each): kill -9 the master serving visitor_count, its replica takes over',
  'sentinel-kill': 'F: Sentinel (master + replica + 3 sentinels): kill -9 the master, the sentinels promote the replica',
}

/** A state change the kit logged (its "Redis unavailable" / "Redis is back" lines), by arrival time. */
export interface StateChange {
  readonly at: number
  readonly to: 'degraded' | 'ready'
}

/** Everything needed to compare `visitor_count` in Redis with what `/api/visits` acknowledged. */
export interface VisitCounts {
  /** `visitor_count` read from Redis after the run (null: could not be read). */
  readonly inRedis: number | null
  /** `/api/visits` answered 2xx within the client timeout. */
  readonly answered: number
  /** `/api/visits` answered 2xx, but later than the client timeout (the server did count them). */
  readonly answeredLate: number
  /** `/api/visits` that failed otherwise (5xx, …): Redis may or may not have counted them. */
  readonly failed: number
  /** Socket errors / unanswered requests of unknown route (each may have been a visit). */
  readonly unknownRouteFailures: number
  /** `/api/visits` in flight when the load stopped (the server may still count them); undefined: unknown split. */
  readonly inFlightAtEnd: number | undefined
  /** Kit only: `inDoubt` events for visitor_count (answered, but Redis may not have applied them). */
  readonly inDoubt: number | undefined
}

/** Scenario D: the burst of `DELETE /api/scans/<target>` during the outage and what reached Redis. */
export interface JournalBurst {
  /** Distinct targets, each cached in Redis before the load (pre-filled) and invalidated once. */
  readonly keys: number
  /** Cache entries of those targets found in Redis before the fault. */
  readonly presentBefore: number
  /** GETs per pre-fill round: a second round means fills were lost to a kit that went degraded during the pre-fill. */
  readonly prefillRounds: readonly number[]
  readonly sent: number
  readonly notSent: number
  /** Answered 2xx (the invalidation was acknowledged). */
  readonly acknowledged: number
  /** Answered otherwise, or not within the client timeout (status 0). */
  readonly failed: number
  /** Acknowledged during the outage (answered before Redis answered again). */
  readonly acknowledgedInOutage: number
  /** performance.now() when the burst started and when its last request settled. */
  readonly startedAt: number
  readonly endedAt: number
  /** After recovery: entries of acknowledged invalidations still in Redis (stale), of the other sent ones, of the unsent ones. */
  readonly staleAcknowledged: number | null
  readonly staleUnacknowledged: number | null
  readonly staleNotSent: number | null
  /** Kit: ERR_KIT_JOURNAL_FULL was logged; the "replayed N write(s)" of its "Redis is back" line. */
  readonly journalFullLogged: boolean
  readonly replayedLogged: number | null
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
  readonly visits: VisitCounts
  /** The peer's logged unhandled rejections (apicache's fire-and-forget writes). */
  readonly unhandledRejections: number
  /** Kit: the state changes it logged during the run. */
  readonly stateChanges: readonly StateChange[]
  /** The app process' event-loop delay per 100 ms window. */
  readonly eld: readonly EldWindow[]
  /** C: the reply latency added during the slow window. */
  readonly slowMs?: number
  /** D: the invalidation burst. */
  readonly journal?: JournalBurst
  /** The job stream through the run and what became of its jobs (bench/chaos/jobs.ts). */
  readonly jobs?: JobStreamResult
  /** E, F: the master killed, its successor, and what the killed master held. */
  readonly failover?: FailoverInfo
  /** After the load the orchestrator waited this long for the server to be back on Redis and gave up. */
  readonly backTimedOut: boolean
  /** performance.now() when the setup (login, warm-up, D's pre-fill) ended; state changes before it belong to the setup. */
  readonly setupEndedAt: number
  /** Redis' own latency monitor (`LATENCY LATEST`): worst ms per event (e.g. `aof-fsync-always`, `command`), over the run. */
  readonly redisLatency: Readonly<Record<string, number>>
  /** Kit: its own metrics, polled and scraped from `GET /metrics` (bench/chaos/kit-metrics.ts). */
  readonly kitMetrics?: KitMetricsRun
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
  /** Kit: ms from Redis answering again until the state was ready with journal.pending 0. */
  readonly drainedMs: number | null
  /** Kit: the highest journal.pending seen from the fault until it was drained. */
  readonly pendingPeak: number | null
  /** ms after Redis answered again until the last failed request of the load ended (null: none after). */
  readonly lastFailureMs: number | null
}

export function detection(run: RunResult): Detection {
  const after = run.polls.filter((p) => p.at >= run.faultAt)
  const failover = isFailover(run.scenario)
  let detected: HealthPoll | undefined
  if (run.contender === 'kit') detected = after.find((p) => p.state === 'degraded')
  // A failover can leave the peer's PING waiting (no answer within the poll timeout) rather than failing.
  else detected = after.find((p) => (failover ? p.status !== 200 : p.status === 503))
  // After a failover a server may be back before the topology reports the new master (backMs < 0);
  // one that never left Redis has no "back".
  const backFrom = failover ? detected?.at ?? Infinity : run.returnAt
  const back = run.contender === 'kit'
    ? after.find((p) => p.at >= (detected?.at ?? run.faultAt) && p.at >= backFrom && p.state === 'ready')
    : after.find((p) => p.at >= backFrom && p.status === 200)
  const drained = run.contender === 'kit'
    ? after.find((p) => p.at >= (back?.at ?? Infinity) && p.state === 'ready' && p.pending === 0)
    : undefined
  const pendings = after.filter((p) => p.at <= (drained?.at ?? Infinity) && typeof p.pending === 'number').map((p) => p.pending as number)
  const lastFailure = run.samples.filter((s) => isFailure(s) && s.end >= run.returnAt).reduce((m, s) => Math.max(m, s.end), -Infinity)
  return {
    detectMs: detected && detected.at < run.returnAt ? detected.at - run.faultAt : null,
    backMs: back ? back.at - run.returnAt : null,
    drainedMs: drained ? drained.at - run.returnAt : null,
    pendingPeak: run.contender === 'kit' && pendings.length > 0 ? Math.max(...pendings) : null,
    lastFailureMs: Number.isFinite(lastFailure) ? lastFailure - run.returnAt : null,
  }
}

/** Largest event-loop delay (ms) among the 100 ms windows ending in [from, to). */
export function eldMax(run: RunResult, from: number, to: number): number | null {
  const windows = run.eld.filter((w) => w.at >= from && w.at < to)
  return windows.length === 0 ? null : Math.max(...windows.map((w) => w.maxMs))
}

/** Median of the windows' maxima in [from, to): the typical delay, where `eldMax` is the worst. */
export function eldMedian(run: RunResult, from: number, to: number): number | null {
  const values = run.eld.filter((w) => w.at >= from && w.at < to).map((w) => w.maxMs).sort((a, b) => a - b)
  return values.length === 0 ? null : quantile(values, 0.5)
}

export interface VisitVerdict {
  /** In Redis minus answered 2xx in time. */
  readonly difference: number
  /** What the difference may be: late answers minus in-doubt increments … plus everything that may or may not have counted. */
  readonly low: number
  readonly high: number
  readonly consistent: boolean
}

/**
 * `visitor_count` must equal the acknowledged visits, up to what is known to be open: increments
 * in doubt (answered, Redis may not have them: lower), and visits in flight at the end, failed or
 * of unknown route (may have counted: higher). Late 2xx answers did count.
 */
export function visitVerdict(run: RunResult): VisitVerdict | undefined {
  const v = run.visits
  if (v.inRedis === null) return undefined
  const low = v.answeredLate - (v.inDoubt ?? 0)
  const high = v.answeredLate + v.failed + v.unknownRouteFailures + (v.inFlightAtEnd ?? run.inFlightAtEnd)
  const difference = v.inRedis - v.answered
  return { difference, low, high, consistent: difference >= low && difference <= high }
}

// ---------------------------------------------------------------- markdown

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2))
const seconds = (value: number | null, none: string): string => (value === null ? none : `${(value / 1000).toFixed(2)} s`)
const signed = (value: number): string => (value > 0 ? `+${value}` : value < 0 ? `−${-value}` : '0')

function kinds(stats: PhaseStats): string {
  const entries = Object.entries(stats.failureKinds).sort((a, b) => b[1] - a[1])
  return entries.length === 0 ? '' : entries.map(([kind, count]) => `${kind} ×${count}`).join(', ')
}

function visitsCell(run: RunResult): string {
  const verdict = visitVerdict(run)
  if (!verdict) return 'could not read Redis'
  const v = run.visits
  const open: string[] = []
  if (v.answeredLate > 0) open.push(`${v.answeredLate} answered 2xx after the timeout`)
  if ((v.inDoubt ?? 0) > 0) open.push(`${v.inDoubt} in doubt`)
  open.push(v.inFlightAtEnd === undefined ? `≤ ${run.inFlightAtEnd} in flight at the end (route unknown)` : `${v.inFlightAtEnd} in flight at the end`)
  if (v.failed > 0) open.push(`${v.failed} failed`)
  if (v.unknownRouteFailures > 0) open.push(`${v.unknownRouteFailures} failed, route unknown`)
  const range = `${signed(verdict.low)} … ${signed(verdict.high)}`
  const text = `${signed(verdict.difference)}, allowed ${range} (${open.join(', ')})`
  return verdict.consistent ? `${text}: consistent` : `**${text}: outside**`
}

function stateChangesCell(run: RunResult, window: string): string {
  if (run.contender !== 'kit') return '–'
  const count = (changes: readonly StateChange[]): string => {
    const degraded = changes.filter((c) => c.to === 'degraded').length
    return `${changes.length} (${degraded} unavailable, ${changes.length - degraded} back)`
  }
  const setup = run.stateChanges.filter((c) => c.at < run.setupEndedAt)
  const beforeFault = run.stateChanges.filter((c) => c.at >= run.setupEndedAt && c.at < run.faultAt)
  const inWindow = run.stateChanges.filter((c) => c.at >= run.faultAt && c.at < run.returnAt)
  const afterwards = run.stateChanges.filter((c) => c.at >= run.returnAt)
  const offset = (at: number): string => `${at >= run.faultAt ? '+' : '−'}${(Math.abs(at - run.faultAt) / 1000).toFixed(2)} s`
  const listed = run.stateChanges.filter((c) => c.at >= run.setupEndedAt).map((c) => `${c.to} ${offset(c.at)}`)
  return `**${count(inWindow).split(' ')[0]}** during ${window}: ${count(inWindow)}; after it: ${count(afterwards)}; under load before the fault: ${count(beforeFault)}; `
    + `during the setup (connect, warm-up${run.scenario === 'journal' ? ', pre-fill' : ''}): ${count(setup)}. Times from the fault: ${listed.length > 0 ? listed.join(', ') : 'none'}`
}

function eldCell(run: RunResult): string {
  const f = (value: number | null): string => (value === null ? '–' : ms(value))
  return `${f(eldMax(run, run.t0, run.faultAt))} / ${f(eldMax(run, run.faultAt, run.returnAt))} / ${f(eldMax(run, run.returnAt, run.endAt))}`
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
  /** C: added reply latency; D: invalidations in the burst, its concurrency, and the kit's journal quota. */
  readonly slowMs: number
  readonly journalKeys: number
  readonly burstConcurrency: number
  readonly journalMaxEntries: number
  /** Version and tree state of what ran, e.g. `a7223d4, lib/ unmodified`. */
  readonly source: string
  readonly redisLatencyThresholdMs: number
  /** The job stream: adds per second (0: none), how long one job takes, how long the count waited at most. */
  readonly jobRate: number
  readonly jobMs: number
  readonly jobWaitS: number
}

function scenarioIntro(scenario: Scenario, context: ReportContext): string | undefined {
  if (scenario === 'slow') {
    return `Both servers reach Redis through a \`LatencyProxy\` (test/helpers/latency-proxy.ts); at the fault every reply is delayed by ${context.slowMs} ms, `
      + 'at the end of the window the delay goes back to 0 (replies already queued keep their due time). Redis itself never stops. "outage" is the slow window; "Redis answered again" is when the delay went back to 0.'
  }
  if (scenario === 'journal') {
    return `Before the load, ${context.journalKeys} distinct targets \`GET /api/scans/j<n>.example\` are cached in Redis (each server through its own cache). `
      + `Right after the kill -9, ${context.burstConcurrency} extra connections send \`DELETE /api/scans/j<n>.example\` (the example's tag invalidation; `
      + `each is one journal entry in the kit) once per target, as fast as they are answered, until Redis is restarted (no new ones after that). `
      + `The kit's cache journal holds ${context.journalMaxEntries} entries (\`journal.maxEntries\` default), so ${Math.max(0, context.journalKeys - context.journalMaxEntries)} invalidations beyond it are expected to be answered but not replayed. `
      + 'Redis restarts from its append-only file (fsync always), so entries cached before the kill are still there and only a replayed invalidation removes them. '
      + 'The load of A runs as well. Why invalidations: examples/ and lib/ stay as they are, and of the example\'s routes only `DELETE /api/scans/:target` journals one entry per distinct key '
      + '(cache fills are never journaled; `/api/visits` is one key, the session and the rate limit one key per client), so it is the honest way to fill the journal through the app.'
  }
  return undefined
}

/** One scenario's section: the per-phase table, then the "| | kit | peer |" table (nothing when neither ran it). */
export function renderScenario(scenario: Scenario, runs: readonly RunResult[], context: ReportContext): string[] {
  const lines: string[] = []
  const kit = runs.find((r) => r.scenario === scenario && r.contender === 'kit')
  const peer = runs.find((r) => r.scenario === scenario && r.contender === 'peer')
  if (!kit && !peer) return lines
  lines.push(`### ${SCENARIO_TITLES[scenario]}`, '')
  const intro = scenarioIntro(scenario, context)
  if (intro) lines.push(intro, '')
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
  const both = (f: (run: RunResult) => string): string => `${kit ? f(kit) : '–'} | ${peer ? f(peer) : '–'}`
  const slow = scenario === 'slow'
  const failover = isFailover(scenario)
  const window = slow ? 'the slow window' : failover ? 'the failover' : 'the outage'
  const since = slow ? 'the delay went back to 0' : failover ? 'the topology reported the new master' : 'Redis answered again'
  // After a failover "back" is counted from the new master's report and can come before it.
  const backCell = (d: Detection): string => seconds(d.backMs, failover && d.detectMs === null ? 'never left it' : 'not seen')
  lines.push('| | kit | peer |', '| --- | --- | --- |')
  if (failover) lines.push(...failoverRows(kit, peer))
  lines.push(`| ${slow ? 'Slowness' : 'Outage'} detected after (kit: \`/health\` says degraded; peer: \`/health/redis\` answers ${failover ? 'other than 200 (503, or no answer within the poll timeout)' : '503'}) | ${dk ? seconds(dk.detectMs, 'not seen') : '–'} | ${dp ? seconds(dp.detectMs, slow ? 'never (PING answers, slowly)' : failover ? 'never' : 'never (PING waits in the offline queue)') : '–'} |`)
  lines.push(`| Back on Redis after ${failover ? `${since} (negative: before it)` : slow ? since : 'it answered again'} (kit: \`/health\` says ready; peer: \`/health/redis\` 200) | ${dk ? backCell(dk) : '–'} | ${dp ? backCell(dp) : '–'} |`)
  lines.push(`| Kit ready with \`journal.pending\` 0, after ${since} (peak \`journal.pending\`) | ${dk ? `${seconds(dk.drainedMs, failover && dk.detectMs === null ? 'never left it' : 'not seen')} (peak ${dk.pendingPeak ?? '–'})` : '–'} | – |`)
  lines.push(`| Last failed request ended, after ${since} | ${dk ? seconds(dk.lastFailureMs, 'none') : '–'} | ${dp ? seconds(dp.lastFailureMs, 'none') : '–'} |`)
  lines.push(`| Kit state changes logged ("Redis unavailable" / "Redis is back" lines) | ${kit ? stateChangesCell(kit, window) : '–'} | – |`)
  lines.push(`| App event-loop delay, worst 100 ms window, ms: before / outage / after | ${both(eldCell)} |`)
  const latencyCell = (run: RunResult): string => {
    const events = Object.entries(run.redisLatency).sort((a, b) => b[1] - a[1])
    return events.length === 0 ? 'none' : events.map(([event, max]) => `${event} ${max} ms`).join(', ')
  }
  lines.push(`| Redis' own stalls over the run (\`LATENCY LATEST\`, events ≥ ${context.redisLatencyThresholdMs} ms, worst each) | ${both(latencyCell)} |`)
  if (scenario === 'journal') {
    const replayCell = (run: RunResult): string => {
      const d = detection(run)
      const end = run.returnAt + ((run.contender === 'kit' ? d.drainedMs : d.backMs) ?? 0)
      const max = eldMax(run, run.returnAt, end + 100)
      const median = eldMedian(run, run.returnAt, end + 100)
      return max === null ? '–' : `worst ${ms(max)} ms, median window ${ms(median ?? 0)} ms (${((end - run.returnAt) / 1000).toFixed(2)} s)`
    }
    lines.push(`| App event-loop delay from Redis answering again until back (kit: ready with \`journal.pending\` 0, i.e. the replay; peer: \`/health/redis\` 200) | ${both(replayCell)} |`)
    const burstCell = (run: RunResult): string => {
      const j = run.journal
      if (!j) return '–'
      return `${j.sent} sent in ${((j.endedAt - j.startedAt) / 1000).toFixed(2)} s (${j.notSent} not sent), ${j.acknowledged} answered 2xx `
        + `(${j.acknowledgedInOutage} before Redis answered again), ${j.failed} failed or unanswered`
    }
    lines.push(`| \`DELETE\` burst (${context.journalKeys} targets) | ${both(burstCell)} |`)
    const staleCell = (run: RunResult): string => {
      const j = run.journal
      if (!j || j.staleAcknowledged === null) return '–'
      const text = `${j.staleAcknowledged} of ${j.acknowledged}`
      return j.staleAcknowledged > 0 ? `**${text}**` : text
    }
    lines.push(`| Acknowledged invalidations whose entry is still in Redis after recovery (stale) | ${both(staleCell)} |`)
    const otherCell = (run: RunResult): string => {
      const j = run.journal
      if (!j || j.staleUnacknowledged === null) return '–'
      const rounds = j.prefillRounds.length > 1 ? ` (in ${j.prefillRounds.length} rounds of ${j.prefillRounds.join(', ')} GETs: fills answered while the kit was degraded stay in memory)` : ''
      return `${j.presentBefore} of ${j.keys} cached before the fault${rounds}; still in Redis after: ${j.staleUnacknowledged} of ${j.sent - j.acknowledged} sent but not acknowledged, ${j.staleNotSent} of ${j.notSent} never sent`
    }
    lines.push(`| Pre-filled entries | ${both(otherCell)} |`)
    lines.push(`| Kit log: \`ERR_KIT_JOURNAL_FULL\` / "replayed N write(s)" | ${kit?.journal ? `${kit.journal.journalFullLogged ? 'logged' : 'not logged'} / ${kit.journal.replayedLogged ?? 'no such line'}` : '–'} | – |`)
  }
  lines.push(`| \`GET /me\` with the same cookie after the run | ${both((r) => String(r.meAfter))} |`)
  lines.push(`| \`visitor_count\` in Redis after the run / \`/api/visits\` answered 2xx | ${both((r) => `${r.visits.inRedis ?? '?'} / ${r.visits.answered}`)} |`)
  lines.push(`| In Redis − acknowledged, and what may explain it | ${both(visitsCell)} |`)
  if (kit?.jobs || peer?.jobs) lines.push(...jobRows(kit?.jobs, peer?.jobs, context.timeoutS))
  if (kit?.kitMetrics) lines.push(`| The kit's own metrics (\`/metrics\`), counter increases from the load start until after the run's checks, next to what the orchestrator measured | ${kitMetricsRowCell(kit, kit.kitMetrics)} | – |`)
  if (peer && peer.unhandledRejections > 0) notes.push(`peer logged ${peer.unhandledRejections} unhandled promise rejections (apicache writes; a default Node process would have exited)`)
  const timedOut = [kit, peer].filter((r): r is RunResult => r !== undefined && r.backTimedOut)
  if (timedOut.length > 0) notes.push(`${timedOut.map((r) => r.contender).join(' and ')} not back on Redis (drained) when the orchestrator stopped waiting`)
  lines.push('')
  if (notes.length > 0) lines.push(`Failures by kind: ${notes.join('; ')}.`, '')
  return lines
}

/** The note on the "kit's own metrics" row (shared with the failover part). */
export function kitMetricsNote(runs: readonly RunResult[]): string[] {
  const interval = runs.find((r) => r.kitMetrics)?.kitMetrics?.intervalMs
  if (interval === undefined) return []
  return [
    '- The kit\'s own metrics: the example serves `kit.metricsRouter()` at `/metrics`; the orchestrator scrapes it when the load starts and again after the run\'s checks '
    + '(after the job count), and the row gives how much each counter grew in between (label sets summed: cache results over caches, jobs over queues, decisions over limiters). '
    + `During the run it also polls \`/metrics\` every ${interval} ms on a keep-alive connection of its own for \`express_redis_kit_state\` and \`express_redis_kit_journal_pending_entries\` `
    + '(the polled state band, the peak backlog). The text format is parsed by `bench/chaos/kit-metrics.ts`. The `/health` polling above is unchanged and still times the detection rows; '
    + 'the row sets the kit\'s counters next to those and to the orchestrator\'s other counts (log lines, the load\'s answers, the burst, the job stream). The peer has no metrics.',
  ]
}

/** The kit's metrics next to the orchestrator's own measurements of the same run. */
function kitMetricsRowCell(run: RunResult, metrics: KitMetricsRun): string {
  const d = detection(run)
  const from = metrics.start?.at ?? run.setupEndedAt
  const logged = run.stateChanges.filter((c) => c.at >= from)
  const answered = (route: string): number => run.samples.filter((s) => s.route === route).length
  return kitMetricsCell(metrics, {
    faultAt: run.faultAt, returnAt: run.returnAt, detectMs: d.detectMs, backMs: d.backMs, pendingPeak: d.pendingPeak,
    loggedDegraded: logged.filter((c) => c.to === 'degraded').length, loggedReady: logged.filter((c) => c.to === 'ready').length,
    scanAnswered: answered('scan'),
    apiRequests: answered('scan') + answered('visits') + (run.jobs?.sent ?? 0) + (run.journal?.sent ?? 0),
    ...(run.journal ? { burst: { sent: run.journal.sent, acknowledged: run.journal.acknowledged, acknowledgedInOutage: run.journal.acknowledgedInOutage, replayedLogged: run.journal.replayedLogged } } : {}),
    ...(run.jobs ? { jobs: run.jobs } : {}),
  })
}

export function renderReport(runs: readonly RunResult[], context: ReportContext): string {
  const first = runs[0]
  const lines: string[] = [
    `## Chaos benchmark: the example server (express-redis-kit) vs the raw peer stack`,
    '',
    `autocannon, ${context.connections} connections, ${context.durationS} s per run, request timeout ${context.timeoutS} s; `
    + `each connection cycles \`GET /api/scans/host<n>.example\` (${context.targets} targets, warmed), \`GET /api/visits\`, \`GET /me\`, `
    + 'all with one logged-in session cookie. '
    + (context.jobRate > 0 ? `Alongside, a job stream: ${context.jobRate} \`POST /api/scans/s<n>.jobs.example/jobs\` per second, a new target (job id) each, open-loop. ` : '')
    + 'Own redis-server per run (append-only file, fsync always). '
    + `Fault at ${(first ? (first.faultAt - first.t0) / 1000 : 0).toFixed(1)} s, Redis back at about ${(first ? (first.returnAt - first.t0) / 1000 : 0).toFixed(1)} s. `
    + `Code: ${context.source}.`,
    '',
    'Cells are **kit / peer**. A request in flight at any moment between the fault and Redis answering again counts in the outage phase. '
    + `Failures = any 5xx, any answer slower than the ${context.timeoutS} s client timeout ("timeout"), socket error, `
    + 'and any 401 or 429 (every request carries a valid session and the limit is out of reach). '
    + 'Latencies are as measured, slow answers included.',
    '',
  ]
  for (const scenario of SCENARIOS.filter((s) => !isFailover(s))) lines.push(...renderScenario(scenario, runs, context))
  lines.push(
    'Notes:',
    `- kit = \`examples/server.ts\` (\`createApp()\`, bound to 127.0.0.1 by \`bench/chaos/kit-server.ts\`, which also prints each \`inDoubt\` event); peer = \`bench/peer-server.ts\`: the same routes on ONE ioredis client with default settings `
    + '(offline queue on, `maxRetriesPerRequest` 20, no `commandTimeout`): apicache 1.6.3, express-session + connect-redis 8.1.0, express-rate-limit + rate-limit-redis, helmet. '
    + 'apicache was written for redis@3 and only uses Redis while `redisClient.connected` is true, so the ioredis client got a `connected` getter (`status === \'ready\'`); '
    + 'the peer also has an `error` listener and an `unhandledRejection` logger so it survives the outage, and runs the job route on raw BullMQ (see the job stream note). Nothing else is changed.',
    `- Load is closed-loop: a request that hangs holds its connection, so few requests are *sent* during a hang; the OK req/s column and the plot show the lost throughput. `
    + `The ${context.timeoutS} s client timeout is applied to the measured latencies: autocannon's own timeout is set beyond the run, because after a timeout it reconnects and, `
    + 'if the server still hangs, misreads the next responses (status undefined, then false timeouts), which we saw against the peer. So a client keeps waiting instead of retrying. '
    + `Requests still unanswered when the load stopped are not counted: ${runs.map((r) => `${r.contender} ${r.scenario} ${r.inFlightAtEnd}`).join(', ')}.`,
    `- Detection is read by polling every ${context.pollIntervalMs} ms on a separate keep-alive connection (kit: \`GET /health\`, which also gives \`journal.pending\`; peer: \`GET /health/redis\`, which PINGs, each poll abandoned after ${context.peerPollTimeoutMs} ms); `
    + 'polling goes on after the load until the server is back (kit: ready with `journal.pending` 0). '
    + '"Redis answered again" is when the restarted server first answered PING (A, D), the SIGCONT (B), or the delay went back to 0 (C). '
    + 'Kit state changes are its own log lines, timed when they reached the orchestrator.',
    '- `visitor_count` vs acknowledged: Redis must hold every 2xx visit, give or take what is open at the end: visits in flight when the load stopped '
    + '(the server still counts them; the route of each connection\'s last request is read from autocannon), visits that failed or got no answer (may or may not have counted), '
    + 'and, for the kit, increments reported by its `inDoubt` event (on the wire when a connection died: answered, but Redis may not have applied them; not replayed). '
    + '"allowed" is that range for in Redis − answered; "outside" means a count that nothing explains.',
    `- Redis' own stalls: each redis-server runs with \`latency-monitor-threshold\` ${context.redisLatencyThresholdMs} ms; \`LATENCY LATEST\` is read before a kill (which loses it) and after the run. `
    + 'In B it is read before the SIGSTOP and reset after the SIGCONT, because Redis would time the stop itself as a stall of the fsync or command it interrupted. '
    + 'It sees stalls inside Redis (fsync, slow commands), not time the process waited for a CPU.',
    ...(context.jobRate > 0 ? [
      `- Job stream (\`bench/chaos/jobs.ts\`): ${context.jobRate} adds per second from the start to the end of the load, on a keep-alive connection of its own, each request bounded by the ${context.timeoutS} s client timeout; `
      + `a job is one simulated scan of ${context.jobMs} ms (four steps with a progress update each; the example's \`scanJobMs\`), worker concurrency 4, attempts 3 with exponential backoff, in both servers. `
      + 'Acknowledged = answered 202 with a job id within the timeout (the kit answers `held` while Redis is unavailable). After the run the orchestrator reads each job\'s hash from Redis '
      + `(\`finishedOn\`, \`returnvalue\`, BullMQ's attempts-started counter \`ats\`) until every acknowledged job finished, for at most ${context.jobWaitS} s: `
      + 'processed = completed; lost = acknowledged but neither completed nor failed by then; ran twice = a worker started it more than once (the scan never fails by itself, so every extra start comes from the fault). '
      + 'The peer runs raw BullMQ with its defaults (its Queue on the app\'s one client, its Worker on a connection with `maxRetriesPerRequest: null`, keys `bull:scan:<id>`).',
    ] : []),
    '- Event-loop delay: `bench/chaos/eld-preload.ts` is preloaded (`--import`) into both servers and reports `monitorEventLoopDelay` (5 ms resolution) per 100 ms window; the cells give the worst window of each phase.',
    `- Machine: ${context.cpus} CPUs shared with other work (the load generator, the proxy of C and the burst of D run in the orchestrator process); 1-minute load average at the start of each run: `
    + `${runs.map((r) => `${r.contender} ${r.scenario} ${r.loadAverage.toFixed(1)}`).join(', ')}. Absolute req/s move with that load; compare within a phase of one run pair, and the shape over time.`,
    ...kitMetricsNote(runs),
    `- Plot: [${context.svgName}](${context.svgName}) (p99 latency and OK req/s per 500 ms, outage shaded${runs.some((r) => r.kitMetrics) ? '; a strip along the top of each panel: the kit degraded, by its polled `express_redis_kit_state`' : ''}).`,
    '',
  )
  return lines.join('\n')
}
