/**
 * The job stream of the chaos benchmark (issue 14): a steady stream of `POST /api/scans/<t>/jobs`,
 * one new target per request, through the whole run (before, during and after the fault), and
 * afterwards a count, read straight from Redis, of what became of every job: acknowledged adds
 * (202) against jobs processed, lost, and run more than once.
 *
 * The stream is open-loop (one request every 1000/rate ms whatever the answers), on a keep-alive
 * agent of its own, each request bounded by the client timeout, so a server that hangs does not
 * slow the stream down, and the autocannon load of the other routes is the same as without it.
 * Both servers run BullMQ underneath (the kit's queue, the peer's raw Queue); each job's hash
 * tells whether it completed (`finishedOn` and `returnvalue`) and how often a worker started it
 * (`ats`, BullMQ's attempts-started counter).
 */
import { Agent, request as httpRequest } from 'node:http'
import type { Redis } from 'ioredis'

/** One POST of the stream. */
export interface JobRequest {
  readonly target: string
  readonly sentAt: number
  /** HTTP status; 0 for no answer within the timeout or a socket error. */
  status: number
  /** The job id and state the server answered with (202). */
  id?: string
  state?: string
  answeredAt?: number
}

export interface JobStream {
  readonly requests: readonly JobRequest[]
  /** Stops sending and resolves once every request sent has settled. */
  stop(): Promise<JobRequest[]>
}

/** The stream's job targets: distinct host names, so each POST is a new job (the target is its id). */
export const jobTarget = (index: number): string => `s${index}.jobs.example`

function post(port: number, path: string, timeoutMs: number, agent: Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        clearTimeout(timer)
        let body: unknown
        try { body = JSON.parse(text) } catch { body = undefined }
        resolve({ status: res.statusCode ?? 0, body })
      })
      res.on('error', () => { clearTimeout(timer); resolve({ status: 0, body: undefined }) })
    })
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs)
    req.on('error', () => { clearTimeout(timer); resolve({ status: 0, body: undefined }) })
    req.end()
  })
}

export function startJobStream(options: { port: number; perSecond: number; timeoutMs: number }): JobStream {
  const agent = new Agent({ keepAlive: true })
  const requests: JobRequest[] = []
  const settled: Promise<void>[] = []
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  const tick = (): void => {
    const index = requests.length
    const request: JobRequest = { target: jobTarget(index), sentAt: performance.now(), status: 0 }
    requests.push(request)
    settled.push(post(options.port, `/api/scans/${request.target}/jobs`, options.timeoutMs, agent).then(({ status, body }) => {
      request.status = status
      request.answeredAt = performance.now()
      const job = body as { id?: unknown; state?: unknown } | undefined
      if (typeof job?.id === 'string') request.id = job.id
      if (typeof job?.state === 'string') request.state = job.state
    }))
    // Paced from the start, not from the last send: a late timer does not lower the rate.
    timer = setTimeout(tick, Math.max(0, started + ((index + 1) * 1000) / options.perSecond - performance.now()))
  }
  tick()
  return {
    requests,
    async stop() {
      clearTimeout(timer)
      await Promise.all(settled)
      agent.destroy()
      return requests
    },
  }
}

/** What BullMQ keeps of one job, read after the run. */
interface StoredJob {
  readonly exists: boolean
  readonly completed: boolean
  readonly failed: boolean
  /** Times a worker started it (BullMQ's `ats`). */
  readonly starts: number
}

async function readJobs(client: Redis, keyOf: (id: string) => string, ids: readonly string[]): Promise<Map<string, StoredJob>> {
  const out = new Map<string, StoredJob>()
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500)
    const pipeline = client.pipeline()
    for (const id of chunk) pipeline.hmget(keyOf(id), 'timestamp', 'finishedOn', 'returnvalue', 'failedReason', 'ats')
    const replies = (await pipeline.exec()) ?? []
    chunk.forEach((id, j) => {
      const [error, value] = replies[j] ?? [new Error('no reply'), null]
      if (error) throw error
      const [timestamp, finishedOn, returnvalue, failedReason, ats] = value as (string | null)[]
      const completed = finishedOn !== null && returnvalue !== null && returnvalue !== undefined
      out.set(id, { exists: timestamp !== null, completed, failed: finishedOn !== null && !completed && failedReason !== null, starts: Number(ats ?? 0) })
    })
  }
  return out
}

/** The job stream of one run, as the report shows it. */
export interface JobStreamResult {
  readonly perSecond: number
  readonly sent: number
  /** Answered 202 within the client timeout. */
  readonly acknowledged: number
  /** Of those, answered `state: 'held'` (kept by the kit while Redis was unavailable). */
  readonly held: number
  /** Acknowledged during the outage (answered before Redis answered again). */
  readonly acknowledgedInOutage: number
  /** Not acknowledged: other statuses (e.g. `{ '500': 3, 'no answer': 12 }`). */
  readonly refused: Readonly<Record<string, number>>
  /** Acknowledged jobs that completed. */
  readonly processed: number
  /** Acknowledged jobs that failed (attempts used up). */
  readonly failed: number
  /** Acknowledged jobs neither completed nor failed when the count stopped waiting (lost, or still to run). */
  readonly lost: number
  /** Of the lost ones, jobs Redis has (waiting or running) but did not finish within the wait. */
  readonly lostButStored: number
  /** Acknowledged jobs a worker started more than once. */
  readonly ranTwice: number
  /** Not acknowledged, yet completed (the client was told nothing, or an error). */
  readonly processedUnacknowledged: number
  /** How long the count waited after the run for the acknowledged jobs to finish. */
  readonly waitedMs: number
  /** The count could not read Redis. */
  readonly unreadable: boolean
}

/**
 * After the run: waits (polling Redis) until every acknowledged job finished or `deadlineMs`
 * passed, then counts. `keyOf` gives a job id's hash key (kit: `job:scan:<id>`; peer: BullMQ's
 * default `bull:scan:<id>`).
 */
export async function countJobs(options: {
  requests: readonly JobRequest[]
  perSecond: number
  returnAt: number
  faultAt: number
  keyOf: (id: string) => string
  deadlineMs: number
  withRedis: <T>(use: (client: Redis) => Promise<T>) => Promise<T | null>
}): Promise<JobStreamResult> {
  const { requests } = options
  const acknowledged = requests.filter((r) => r.status === 202 && r.id !== undefined)
  const ackIds = acknowledged.map((r) => r.id as string)
  const refused: Record<string, number> = {}
  for (const r of requests) {
    if (r.status === 202 && r.id !== undefined) continue
    const kind = r.status === 0 ? 'no answer' : String(r.status)
    refused[kind] = (refused[kind] ?? 0) + 1
  }
  const started = performance.now()
  let stored: Map<string, StoredJob> | null = null
  for (;;) {
    stored = await options.withRedis((client) => readJobs(client, options.keyOf, ackIds))
    const open = stored === null ? ackIds.length : ackIds.filter((id) => { const job = stored?.get(id); return !job?.completed && !job?.failed }).length
    if (open === 0 || performance.now() - started >= options.deadlineMs) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  const waitedMs = performance.now() - started
  // Targets whose add was not acknowledged: did the job run anyway? (Their id is the target.)
  const others = requests.filter((r) => !(r.status === 202 && r.id !== undefined)).map((r) => r.target)
  const otherJobs = await options.withRedis((client) => readJobs(client, options.keyOf, others))
  const jobs = stored ?? new Map<string, StoredJob>()
  const of = (id: string): StoredJob | undefined => jobs.get(id)
  const processed = ackIds.filter((id) => of(id)?.completed === true).length
  const failed = ackIds.filter((id) => of(id)?.failed === true).length
  const lostIds = ackIds.filter((id) => of(id)?.completed !== true && of(id)?.failed !== true)
  return {
    perSecond: options.perSecond,
    sent: requests.length,
    acknowledged: acknowledged.length,
    held: acknowledged.filter((r) => r.state === 'held').length,
    acknowledgedInOutage: acknowledged.filter((r) => (r.answeredAt ?? Infinity) >= options.faultAt && (r.answeredAt ?? Infinity) < options.returnAt).length,
    refused,
    processed,
    failed,
    lost: lostIds.length,
    lostButStored: lostIds.filter((id) => of(id)?.exists === true).length,
    ranTwice: ackIds.filter((id) => (of(id)?.starts ?? 0) > 1).length,
    processedUnacknowledged: otherJobs === null ? 0 : others.filter((id) => otherJobs.get(id)?.completed === true).length,
    waitedMs,
    unreadable: stored === null,
  }
}

// ---------------------------------------------------------------- report rows

/** The rows of the "| | kit | peer |" table of one scenario. */
export function jobRows(kit: JobStreamResult | undefined, peer: JobStreamResult | undefined, timeoutS: number): string[] {
  const both = (f: (j: JobStreamResult) => string): string => `${kit ? f(kit) : '–'} | ${peer ? f(peer) : 'n/a'}`
  const refusedText = (j: JobStreamResult): string => {
    const entries = Object.entries(j.refused).sort((a, b) => b[1] - a[1])
    return entries.length === 0 ? 'none' : entries.map(([kind, n]) => `${kind} ×${n}`).join(', ')
  }
  const bold = (n: number): string => (n > 0 ? `**${n}**` : '0')
  return [
    `| Job stream: \`POST /api/scans/s<n>.jobs.example/jobs\` sent / acknowledged (202 within ${timeoutS} s) / of them during the outage / answered \`held\` | `
    + `${both((j) => `${j.sent} / ${j.acknowledged} / ${j.acknowledgedInOutage} / ${j.held}`)} |`,
    `| Job stream: not acknowledged | ${both(refusedText)} |`,
    `| **Acknowledged jobs processed / lost / ran twice** (completed in Redis; lost = neither completed nor failed) | `
    + `${both((j) => (j.unreadable ? 'could not read Redis' : `${j.processed} of ${j.acknowledged} / ${bold(j.lost)}${j.lostButStored > 0 ? ` (${j.lostButStored} still in Redis, unfinished)` : ''} / ${bold(j.ranTwice)}`
      + `${j.failed > 0 ? `; ${j.failed} failed` : ''}`))} |`,
    `| Jobs processed although their add was not acknowledged; wait for the acknowledged ones after the run | ${both((j) => `${j.processedUnacknowledged}; ${(j.waitedMs / 1000).toFixed(1)} s`)} |`,
  ]
}
