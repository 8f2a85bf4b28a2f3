/**
 * What the chaos benchmark reads about the server under test, whatever Redis it runs on: whether
 * it serves from Redis (polled over HTTP), the kit's state log, its `inDoubt` increments, and the
 * visits the load got acknowledged.
 * Shared by the single-server scenarios (bench/chaos.ts) and the failover ones (topology-run.ts).
 */
import { getJson, type HealthPoll, type Route, type Sample } from './load.js'
import type { AppProcess } from './servers.js'
import { isFailure, type StateChange, type VisitCounts } from './stats.js'

export const POLL_INTERVAL_MS = 25

/** On Redis: kit ready with `journal.pending` 0; peer `/health/redis` 200. */
function servesFromRedis(app: AppProcess, poll: HealthPoll): boolean {
  return app.contender === 'kit' ? poll.state === 'ready' && poll.pending === 0 : poll.status === 200
}

/**
 * After the load: waits until the poller saw the server back on Redis after `returnAt` (kit: ready
 * with `journal.pending` 0; peer: `/health/redis` 200), so the report's timings come from the same polls.
 */
export async function waitBackOnRedis(app: AppProcess, poller: { readonly polls: readonly HealthPoll[] }, returnAt: number, deadlineMs: number): Promise<boolean> {
  const deadline = performance.now() + deadlineMs
  while (performance.now() < deadline) {
    if (poller.polls.some((poll) => poll.at >= returnAt && servesFromRedis(app, poll))) return true
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
  }
  return false
}

/** Polls until the server serves from Redis (kit: ready with `journal.pending` 0; peer: `/health/redis` 200). */
export async function onRedis(app: AppProcess, deadlineMs: number): Promise<boolean> {
  const deadline = performance.now() + deadlineMs
  while (performance.now() < deadline) {
    try {
      if (app.contender === 'kit') {
        const body = (await getJson(app.port, '/health', 1000)).body as { redis?: { state?: string }; journal?: { pending?: number } }
        if (body.redis?.state === 'ready' && body.journal?.pending === 0) return true
      } else if ((await getJson(app.port, '/health/redis', 1000)).status === 200) {
        return true
      }
    } catch { /* keep polling */ }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
  }
  return false
}

/** The kit's own state log: "Redis unavailable …" and "Redis is back …" lines. */
export function stateChanges(app: AppProcess): StateChange[] {
  const changes: StateChange[] = []
  for (const line of app.lines) {
    if (line.text.includes('Redis unavailable')) changes.push({ at: line.at, to: 'degraded' })
    else if (line.text.includes('Redis is back')) changes.push({ at: line.at, to: 'ready' })
  }
  return changes
}

/** Sum of the kit's `inDoubt` increments of one key (printed by kit-server.ts). */
export function inDoubt(app: AppProcess, key: string): number {
  let sum = 0
  for (const line of app.output) {
    const match = /^\[chaos-indoubt\] (\S+) (\S+) (\S+) (-?\d+)$/.exec(line)
    if (match && match[3] === key) sum += Number(match[4])
  }
  return sum
}

/**
 * `/api/visits` as the load saw it, next to `visitor_count` read from Redis after the run (see
 * `visitVerdict` in stats.ts). `inDoubt`: the kit's in-doubt increments of the key (peer: undefined).
 */
export function visitCounts(samples: readonly Sample[], inFlightByRoute: Readonly<Record<Route, number>> | undefined,
  inRedis: number | null, inDoubtCount: number | undefined): VisitCounts {
  const visits = samples.filter((s) => s.route === 'visits')
  const is2xx = (s: Sample): boolean => s.kind !== 'error' && s.status >= 200 && s.status < 300
  return {
    inRedis,
    answered: visits.filter((s) => !isFailure(s)).length,
    answeredLate: visits.filter((s) => isFailure(s) && is2xx(s)).length,
    failed: visits.filter((s) => isFailure(s) && !is2xx(s)).length,
    unknownRouteFailures: samples.filter((s) => s.route === 'unknown' && isFailure(s)).length,
    inFlightAtEnd: inFlightByRoute?.visits,
    inDoubt: inDoubtCount,
  }
}

/** What a run starts next to its load, stopped in this order when the run is cut off by an error. */
export interface RunParts {
  load: { stop(): void }
  poller: { stop(): Promise<unknown> }
  metricsWatch?: { stopPolling(): Promise<unknown> } | undefined
  jobStream?: { stop(): Promise<unknown> } | undefined
}

/** A run cut off by an error: stops what it started (the caller rethrows). */
export async function stopRun({ load, poller, metricsWatch, jobStream }: RunParts): Promise<void> {
  load.stop()
  await poller.stop()
  await metricsWatch?.stopPolling()
  await jobStream?.stop()
}
